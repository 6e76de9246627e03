package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// rawTBS returns the tbsCertificate element of a DER certificate
// (RFC 5280 §4.1).
func rawTBS(der []byte) ([]byte, error) {
	tbs, _, err := splitCert(der)
	return tbs, err
}

// splitCert returns the raw tbsCertificate and signatureAlgorithm elements.
func splitCert(der []byte) (tbs, sigAlg []byte, err error) {
	in := cryptobyte.String(der)
	var cert cryptobyte.String
	var t, a cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() ||
		!cert.ReadASN1Element(&t, cbasn1.SEQUENCE) ||
		!cert.ReadASN1Element(&a, cbasn1.SEQUENCE) {
		return nil, nil, errors.New("malformed certificate DER")
	}
	return t, a, nil
}

// signTBS signs exactly the given TBS bytes with signer, the way
// x509.CreateCertificate would for sigAlg, and assembles the certificate
// (RFC 5280 §4.1: tbsCertificate, signatureAlgorithm, signatureValue).
func signTBS(signer crypto.Signer, tbs, sigAlgDER []byte, sigAlg x509.SignatureAlgorithm) ([]byte, error) {
	h, opts := hashFor(sigAlg)
	msg := tbs
	if h != 0 {
		d := h.New()
		d.Write(tbs)
		msg = d.Sum(nil)
	}
	sig, err := signer.Sign(rand.Reader, msg, opts)
	if err != nil {
		return nil, fmt.Errorf("signing in the HSM: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sigAlgDER)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

func hashFor(a x509.SignatureAlgorithm) (crypto.Hash, crypto.SignerOpts) {
	switch a {
	case x509.PureEd25519:
		return 0, crypto.Hash(0)
	case x509.SHA256WithRSAPSS:
		return crypto.SHA256, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	case x509.SHA384WithRSAPSS:
		return crypto.SHA384, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384}
	case x509.SHA512WithRSAPSS:
		return crypto.SHA512, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512}
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384:
		return crypto.SHA384, crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512:
		return crypto.SHA512, crypto.SHA512
	}
	return crypto.SHA256, crypto.SHA256
}
