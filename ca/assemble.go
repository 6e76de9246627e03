package ca

import (
	"crypto"
	"crypto/rand"
	"errors"

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

// tbsSigAlg returns the signature AlgorithmIdentifier inside a TBS
// (RFC 5280 §4.1.2.3); the outer signatureAlgorithm must equal it (§4.1.1.2).
func tbsSigAlg(tbs []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var body, alg cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) ||
		!body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!body.SkipASN1(cbasn1.INTEGER) || // serialNumber
		!body.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed TBS certificate")
	}
	return alg, nil
}

// signTBS signs exactly the given TBS bytes with signer, as
// x509.CreateCertificate would with opts, and assembles the certificate
// (RFC 5280 §4.1: tbsCertificate, signatureAlgorithm, signatureValue).
func signTBS(signer crypto.Signer, tbs, sigAlgDER []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := crypto.SignMessage(signer, rand.Reader, tbs, opts)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sigAlgDER)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// tbsSPKI returns the subjectPublicKeyInfo element of a TBS (RFC 5280
// §4.1.2.7), exactly as it will be signed.
func tbsSPKI(tbs []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var body, spki cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) ||
		!body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!body.SkipASN1(cbasn1.INTEGER) || // serialNumber
		!body.SkipASN1(cbasn1.SEQUENCE) || // signature
		!body.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!body.SkipASN1(cbasn1.SEQUENCE) || // validity
		!body.SkipASN1(cbasn1.SEQUENCE) || // subject
		!body.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed TBS certificate")
	}
	return spki, nil
}
