package ocsp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
)

// Error responses (RFC 6960 §4.2.1): an OCSPResponse with only a status.
var (
	malformedResponse    = []byte{0x30, 0x03, 0x0a, 0x01, 0x01}
	internalErrResponse  = []byte{0x30, 0x03, 0x0a, 0x01, 0x02}
	tryLaterResponse     = []byte{0x30, 0x03, 0x0a, 0x01, 0x03}
	unauthorizedResponse = []byte{0x30, 0x03, 0x0a, 0x01, 0x06}

	oidBasicResponse = []byte{0x2b, 6, 1, 5, 5, 7, 48, 1, 1}
)

// certState is a certificate's status as an OCSP answer gives it.
type certState int

const (
	stateGood certState = iota
	stateRevoked
	stateUnknown
)

// single is one SingleResponse to be written.
type single struct {
	id        CertID
	state     certState
	revokedAt time.Time
	reason    core.RevocationReason
}

// sigAlg is the signature algorithm for a key, as x/crypto/ocsp would pick.
type sigAlg struct {
	der  []byte // AlgorithmIdentifier
	hash crypto.Hash
}

func signatureAlgorithm(pub crypto.PublicKey) (sigAlg, error) {
	ec := func(last byte, h crypto.Hash) sigAlg {
		return sigAlg{der: []byte{0x30, 10, 0x06, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, last}, hash: h}
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ec(2, crypto.SHA256), nil
		case elliptic.P384():
			return ec(3, crypto.SHA384), nil
		case elliptic.P521():
			return ec(4, crypto.SHA512), nil
		}
	case *rsa.PublicKey:
		return sigAlg{der: []byte{0x30, 13, 0x06, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 11, 0x05, 0}, hash: crypto.SHA256}, nil
	case ed25519.PublicKey:
		return sigAlg{der: []byte{0x30, 5, 0x06, 3, 0x2b, 0x65, 0x70}}, nil
	}
	return sigAlg{}, fmt.Errorf("unsupported responder key type %T", pub)
}

// hashOID returns the DER content of h's OID.
func hashOID(h crypto.Hash) []byte {
	for _, o := range hashOIDs {
		if o.hash == h {
			return o.oid
		}
	}
	return nil
}

// sign builds and signs a successful OCSPResponse carrying singles.
func (k *signingKey) sign(singles []single, nonce []byte, producedAt, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(k.responderID)
		b.AddASN1GeneralizedTime(producedAt.UTC().Truncate(time.Second))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, s := range singles {
				addSingle(b, s, thisUpdate, nextUpdate)
			}
		})
		if nonce != nil {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oidNonce) })
						b.AddASN1OctetString(nonce)
					})
				})
			})
		}
	})
	data, err := tbs.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding OCSP response: %w", err)
	}
	var sig []byte
	if k.alg.hash != 0 {
		h := k.alg.hash.New()
		h.Write(data)
		sig, err = k.signer.Sign(rand.Reader, h.Sum(nil), k.alg.hash)
	} else {
		sig, err = k.signer.Sign(rand.Reader, data, crypto.Hash(0))
	}
	if err != nil {
		return nil, fmt.Errorf("signing OCSP response: %w", err)
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(0) // successful
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oidBasicResponse) })
				b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddBytes(data)
						b.AddBytes(k.alg.der)
						b.AddASN1BitString(sig)
						if k.certs != nil {
							b.AddBytes(k.certs)
						}
					})
				})
			})
		})
	})
	return out.Bytes()
}

func addSingle(b *cryptobyte.Builder, s single, thisUpdate, nextUpdate time.Time) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(hashOID(s.id.Hash)) })
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(s.id.IssuerNameHash)
			b.AddASN1OctetString(s.id.IssuerKeyHash)
			b.AddASN1BigInt(s.id.Serial.Big())
		})
		switch s.state {
		case stateGood:
			b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {})
		case stateRevoked:
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(s.revokedAt.UTC().Truncate(time.Second))
				if s.reason != core.ReasonUnspecified {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1Enum(int64(s.reason))
					})
				}
			})
		default:
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(*cryptobyte.Builder) {})
		}
		b.AddASN1GeneralizedTime(thisUpdate.UTC().Truncate(time.Second))
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1GeneralizedTime(nextUpdate.UTC().Truncate(time.Second))
		})
	})
}

// responderIDByKey encodes ResponderID byKey [2] EXPLICIT KeyHash: the
// SHA-1 of the responder's subjectPublicKey bits (RFC 6960 §4.2.1).
func responderIDByKey(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	in := cryptobyte.String(spki)
	var seq cryptobyte.String
	var bits []byte
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitStringAsBytes(&bits) {
		return nil, fmt.Errorf("parsing responder public key")
	}
	sum := sha1.Sum(bits)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(sum[:])
	})
	return b.Bytes()
}
