package crl

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// Entry is one revoked certificate as it appears in a CRL (RFC 5280 §5.1.2.6).
type Entry struct {
	Serial    core.Serial
	RevokedAt time.Time
	// Reason is written as the reasonCode entry extension (§5.3.1), except
	// unspecified, which the RFC says SHOULD be absent.
	Reason core.RevocationReason
	// InvalidityDate, when not zero, is written as the invalidityDate entry
	// extension (§5.3.2).
	InvalidityDate time.Time
}

// EntrySource calls fn once for each entry, in any order, and returns the
// first error fn returns. The encoder keeps only the encoded bytes of each
// entry, so a source may stream rows straight from a database cursor.
type EntrySource func(fn func(Entry) error) error

// Template is what a CRL says besides its entries.
type Template struct {
	// Issuer is the CA certificate whose key signs the CRL. The encoder reads
	// RawSubject (the CRL issuer name), SubjectKeyId (for the authority key
	// identifier; computed from the public key, as RFC 5280 §4.2.1.2 method 1,
	// when empty) and PublicKey (to check the signature it made).
	Issuer *x509.Certificate
	// Number is the cRLNumber (§5.2.3); it must be positive.
	Number int64
	// BaseNumber, when positive, makes this a delta CRL: the critical
	// deltaCRLIndicator (§5.2.4) names the complete CRL it builds on.
	BaseNumber int64
	// ThisUpdate and NextUpdate are written to the second, in UTC.
	ThisUpdate, NextUpdate time.Time
	// DistributionPoint, when set, goes into the critical
	// issuingDistributionPoint extension (§5.2.5) as a URI fullName.
	DistributionPoint string
	// FreshestCRL, when set on a complete CRL, names where its delta CRLs are
	// published (§5.2.6).
	FreshestCRL string
}

// Extension OIDs (RFC 5280 §5.2, §5.3), DER-encoded with their tag.
var (
	oidAKI          = []byte{tagOID, 3, 0x55, 0x1d, 0x23}
	oidCRLNumber    = []byte{tagOID, 3, 0x55, 0x1d, 0x14}
	oidDeltaCRL     = []byte{tagOID, 3, 0x55, 0x1d, 0x1b}
	oidIDP          = []byte{tagOID, 3, 0x55, 0x1d, 0x1c}
	oidFreshestCRL  = []byte{tagOID, 3, 0x55, 0x1d, 0x2e}
	oidReasonCode   = []byte{tagOID, 3, 0x55, 0x1d, 0x15}
	oidInvalidity   = []byte{tagOID, 3, 0x55, 0x1d, 0x18}
	encodedVersion2 = []byte{tagInteger, 1, 1}
)

// chunkSize is the size of the blocks encoded entries are kept in; blocks
// avoid re-copying everything as a single slice grows.
const chunkSize = 1 << 20

// Encode builds the CRL described by tmpl with the entries each yields,
// signs it with signer and returns the DER CertificateList. Entries are
// encoded as they come; the TBS is hashed while it is assembled into the
// output, so the peak memory is about twice the encoded entries (roughly 50
// bytes each). The signature is checked against tmpl.Issuer's public key
// before the CRL is returned, so a signer that does not match the issuer
// certificate is an error, not a bad CRL.
func Encode(ctx context.Context, tmpl Template, signer crypto.Signer, each EntrySource) ([]byte, error) {
	if tmpl.Issuer == nil || len(tmpl.Issuer.RawSubject) == 0 {
		return nil, errors.New("crl: template has no issuer certificate")
	}
	if tmpl.Number <= 0 || tmpl.BaseNumber < 0 || (tmpl.BaseNumber > 0 && tmpl.BaseNumber >= tmpl.Number) {
		return nil, fmt.Errorf("crl: bad CRL number %d (base %d)", tmpl.Number, tmpl.BaseNumber)
	}
	if !tmpl.NextUpdate.After(tmpl.ThisUpdate) {
		return nil, errors.New("crl: nextUpdate must be after thisUpdate")
	}
	alg, err := signatureAlgorithm(signer.Public())
	if err != nil {
		return nil, err
	}
	exts, err := crlExtensions(tmpl)
	if err != nil {
		return nil, err
	}

	// Pass over the source: encode every entry into chunks.
	var (
		chunks [][]byte
		cur    = make([]byte, 0, chunkSize)
		total  int
		count  int
		tmp    [21]byte
	)
	err = each(func(e Entry) error {
		if len(cur)+128 > cap(cur) {
			chunks = append(chunks, cur)
			total += len(cur)
			cur = make([]byte, 0, chunkSize)
		}
		var err error
		if cur, err = appendEntry(cur, e, &tmp); err != nil {
			return err
		}
		count++
		if count&0xffff == 0 {
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("crl: reading revoked certificates: %w", err)
	}
	chunks = append(chunks, cur)
	total += len(cur)

	// Sizes, now that the entries' length is known.
	tbsContent := len(encodedVersion2) + len(alg.der) + len(tmpl.Issuer.RawSubject) +
		timeLen(tmpl.ThisUpdate) + timeLen(tmpl.NextUpdate) + len(exts)
	if count > 0 { // RFC 5280 §5.1.2.6: absent when empty.
		tbsContent += hdrLen(total) + total
	}
	tbsLen := hdrLen(tbsContent) + tbsContent
	const reserve = 6 // room for the outer SEQUENCE header, filled in last
	buf := make([]byte, reserve, reserve+tbsLen+len(alg.der)+1100)

	var h hash.Hash
	if alg.hash != 0 {
		h = alg.hash.New()
	}
	mark := len(buf)
	flush := func() {
		if h != nil {
			h.Write(buf[mark:])
		}
		mark = len(buf)
	}
	buf = appendHdr(buf, tagSequence, tbsContent)
	buf = append(buf, encodedVersion2...)
	buf = append(buf, alg.der...)
	buf = append(buf, tmpl.Issuer.RawSubject...)
	buf = appendTime(buf, tmpl.ThisUpdate)
	buf = appendTime(buf, tmpl.NextUpdate)
	if count > 0 {
		buf = appendHdr(buf, tagSequence, total)
		for i, c := range chunks {
			buf = append(buf, c...)
			flush() // hash while the chunk is still in cache
			chunks[i] = nil
		}
	}
	buf = append(buf, exts...)
	flush()
	if len(buf)-reserve != tbsLen {
		return nil, fmt.Errorf("crl: internal size mismatch: wrote %d TBS bytes, sized %d", len(buf)-reserve, tbsLen)
	}
	tbs := buf[reserve:]

	var sig []byte
	if h != nil {
		sig, err = signer.Sign(rand.Reader, h.Sum(nil), alg.hash)
	} else {
		sig, err = signer.Sign(rand.Reader, tbs, crypto.Hash(0))
	}
	if err != nil {
		return nil, fmt.Errorf("crl: signing: %w", err)
	}
	if err := tmpl.Issuer.CheckSignature(alg.x509, tbs, sig); err != nil {
		return nil, fmt.Errorf("crl: signature does not verify with the issuer certificate: %w", err)
	}
	buf = append(buf, alg.der...)
	buf = appendHdr(buf, tagBitString, len(sig)+1)
	buf = append(buf, 0)
	buf = append(buf, sig...)

	var hdr [6]byte
	outer := appendHdr(hdr[:0], tagSequence, len(buf)-reserve)
	start := reserve - len(outer)
	copy(buf[start:], outer)
	return buf[start:], nil
}

// appendEntry appends one revokedCertificates element. Every part has a
// fixed, small size, so the whole entry is under 128 bytes and its length
// fits in one octet.
func appendEntry(b []byte, e Entry, tmp *[21]byte) ([]byte, error) {
	sb, err := serialBytes(tmp, e.Serial)
	if err != nil {
		return b, err
	}
	extLen := 0
	if e.Reason != core.ReasonUnspecified {
		if e.Reason < 0 || e.Reason > core.ReasonAACompromise || e.Reason == 7 {
			return b, fmt.Errorf("serial %s: bad reason code %d", e.Serial, int(e.Reason))
		}
		extLen += 12
	}
	if !e.InvalidityDate.IsZero() {
		extLen += 2 + 5 + 2 + 17
	}
	content := 2 + len(sb) + timeLen(e.RevokedAt)
	if extLen > 0 {
		content += 2 + extLen
	}
	b = append(b, tagSequence, byte(content), tagInteger, byte(len(sb)))
	b = append(b, sb...)
	b = appendTime(b, e.RevokedAt)
	if extLen > 0 {
		b = append(b, tagSequence, byte(extLen))
		// Same order as crypto/x509, so outputs compare byte for byte.
		if !e.InvalidityDate.IsZero() {
			b = append(b, tagSequence, 24)
			b = append(b, oidInvalidity...)
			b = append(b, tagOctetString, 17)
			b = appendGeneralizedTime(b, e.InvalidityDate)
		}
		if e.Reason != core.ReasonUnspecified {
			b = append(b, tagSequence, 10)
			b = append(b, oidReasonCode...)
			b = append(b, tagOctetString, 3, tagEnumerated, 1, byte(e.Reason))
		}
	}
	return b, nil
}

// crlExtensions encodes [0] EXPLICIT Extensions of the TBSCertList.
func crlExtensions(tmpl Template) ([]byte, error) {
	skid := tmpl.Issuer.SubjectKeyId
	if len(skid) == 0 {
		spki, err := x509.MarshalPKIXPublicKey(tmpl.Issuer.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("crl: issuer public key: %w", err)
		}
		var info struct {
			Alg asn1.RawValue
			Key asn1.BitString
		}
		if _, err := asn1.Unmarshal(spki, &info); err != nil {
			return nil, fmt.Errorf("crl: issuer public key: %w", err)
		}
		sum := sha1.Sum(info.Key.Bytes)
		skid = sum[:]
	}
	var all []byte
	aki := appendTLV(nil, 0x80, skid)
	all = appendExt(all, oidAKI, false, appendTLV(nil, tagSequence, aki))
	all = appendExt(all, oidCRLNumber, false, appendInt64(nil, tmpl.Number))
	if tmpl.BaseNumber > 0 {
		all = appendExt(all, oidDeltaCRL, true, appendInt64(nil, tmpl.BaseNumber))
	}
	if tmpl.DistributionPoint != "" {
		// IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0]
		// DistributionPointName { fullName [0] GeneralNames { [6] URI } } }
		uri := appendTLV(nil, 0x86, []byte(tmpl.DistributionPoint))
		dpn := appendTLV(nil, 0xa0, appendTLV(nil, 0xa0, uri))
		all = appendExt(all, oidIDP, true, appendTLV(nil, tagSequence, dpn))
	}
	if tmpl.FreshestCRL != "" && tmpl.BaseNumber == 0 {
		uri := appendTLV(nil, 0x86, []byte(tmpl.FreshestCRL))
		dp := appendTLV(nil, tagSequence, appendTLV(nil, 0xa0, appendTLV(nil, 0xa0, uri)))
		all = appendExt(all, oidFreshestCRL, false, appendTLV(nil, tagSequence, dp))
	}
	seq := appendTLV(nil, tagSequence, all)
	return appendTLV(nil, 0xa0, seq), nil
}

func appendExt(b []byte, oid []byte, critical bool, value []byte) []byte {
	n := len(oid) + hdrLen(len(value)) + len(value)
	if critical {
		n += 3
	}
	b = appendHdr(b, tagSequence, n)
	b = append(b, oid...)
	if critical {
		b = append(b, tagBoolean, 1, 0xff)
	}
	return appendTLV(b, tagOctetString, value)
}

type sigAlg struct {
	der  []byte // AlgorithmIdentifier
	hash crypto.Hash
	x509 x509.SignatureAlgorithm
}

// signatureAlgorithm picks the algorithm x509.CreateRevocationList would
// pick for the key: SHA-256/384/512 by curve for ECDSA, SHA-256 PKCS#1 v1.5
// for RSA, pure Ed25519.
func signatureAlgorithm(pub crypto.PublicKey) (sigAlg, error) {
	ecdsaAlg := func(last byte, h crypto.Hash, a x509.SignatureAlgorithm) sigAlg {
		return sigAlg{der: []byte{tagSequence, 10, tagOID, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, last}, hash: h, x509: a}
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ecdsaAlg(2, crypto.SHA256, x509.ECDSAWithSHA256), nil
		case elliptic.P384():
			return ecdsaAlg(3, crypto.SHA384, x509.ECDSAWithSHA384), nil
		case elliptic.P521():
			return ecdsaAlg(4, crypto.SHA512, x509.ECDSAWithSHA512), nil
		}
	case *rsa.PublicKey:
		return sigAlg{der: []byte{tagSequence, 13, tagOID, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 11, tagNull, 0},
			hash: crypto.SHA256, x509: x509.SHA256WithRSA}, nil
	case ed25519.PublicKey:
		return sigAlg{der: []byte{tagSequence, 5, tagOID, 3, 0x2b, 0x65, 0x70}, x509: x509.PureEd25519}, nil
	}
	return sigAlg{}, fmt.Errorf("crl: unsupported signing key type %T", pub)
}
