package ra

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/strongroom-pki/strongroom/core"
)

// notPKCS10 is ParseCSR's answer to bytes whose ASN.1 does not parse:
// encoding/asn1's reasons are Go struct dumps ("tags don't match (16 vs
// {class:0 tag:0 …}) certificateRequest @2"), of no use to a client.
const notPKCS10 = "the CSR is not a DER-encoded PKCS #10 request (its ASN.1 structure does not parse); send a CSR as made by openssl req or a CSR library"

// csrParseDetail says why crypto/x509 refused a CSR: its own reasons
// ("unsupported elliptic curve", "trailing data") as they are, an ASN.1
// decoding failure in plain words.
func csrParseDetail(err error) string {
	var se asn1.StructuralError
	var syn asn1.SyntaxError
	if errors.As(err, &se) || errors.As(err, &syn) || strings.Contains(err.Error(), "asn1:") {
		return notPKCS10
	}
	return "the CSR is not a valid PKCS #10 request (" + strings.TrimPrefix(err.Error(), "x509: ") + ")"
}

// weakCSRSignature are the signature algorithms crypto/x509 verifies on
// a CSR that are refused anyway.
var weakCSRSignature = map[x509.SignatureAlgorithm]bool{x509.SHA1WithRSA: true, x509.ECDSAWithSHA1: true}

// acceptedAlgorithms is what a CSR may be signed with, for refusals.
const acceptedAlgorithms = "use ECDSA, RSA (PKCS #1 v1.5 or PSS) or Ed25519, with SHA-256 or better"

// CheckCSRSignature verifies csr's self-signature. A signature that does
// not verify is KindBadCSR; so is one made with an algorithm this CA does
// not implement (Ed448, DSA, an RSASSA-PSS key) or refuses as insecure
// (MD5, SHA-1), whose refusal names the algorithm instead of calling a
// valid signature bad.
func CheckCSRSignature(csr *x509.CertificateRequest) error {
	err := csr.CheckSignature()
	if err == nil {
		if weakCSRSignature[csr.SignatureAlgorithm] {
			// SHA-1: Let's Encrypt refuses such CSRs since 2022, Pebble
			// always has; a client still making them is one to update.
			return core.Errorf(core.KindBadCSR, "the CSR is signed with %s, which this CA does not accept (SHA-1 is broken); %s", csr.SignatureAlgorithm, acceptedAlgorithms)
		}
		return nil
	}
	var insecure x509.InsecureAlgorithmError
	switch {
	case csr.PublicKeyAlgorithm == x509.UnknownPublicKeyAlgorithm:
		return core.Wrap(core.KindBadCSR, err, fmt.Sprintf("the CSR's public key (%s) is of a type this CA does not accept; use an ECDSA (P-256, P-384 or P-521), RSA or Ed25519 key", keyAlgorithmName(csr)))
	case csr.SignatureAlgorithm == x509.UnknownSignatureAlgorithm && signatureAlgorithmName(csr) == "RSASSA-PSS":
		// crypto/x509 knows RSASSA-PSS only with the salt as long as the
		// hash; openssl's default salt is the longest that fits.
		return core.Wrap(core.KindBadCSR, err, "the CSR is signed with RSASSA-PSS parameters this CA does not accept: the salt must be as long as the hash (openssl req -sigopt rsa_pss_saltlen:digest), with SHA-256 or better; or sign with PKCS #1 v1.5 or ECDSA")
	case errors.Is(err, x509.ErrUnsupportedAlgorithm), errors.As(err, &insecure),
		csr.SignatureAlgorithm == x509.UnknownSignatureAlgorithm:
		return core.Wrap(core.KindBadCSR, err, fmt.Sprintf("the CSR is signed with %s, which this CA does not accept; %s", signatureAlgorithmName(csr), acceptedAlgorithms))
	}
	return core.Wrap(core.KindBadCSR, err, "the CSR's signature does not verify (was the CSR changed after it was signed?)")
}

// Names of algorithms crypto/x509 does not know, by OID.
var algorithmNames = map[string]string{
	"1.3.101.110":           "X25519",
	"1.3.101.111":           "X448",
	"1.3.101.113":           "Ed448",
	"1.2.840.113549.1.1.10": "RSASSA-PSS",
	"1.2.840.10040.4.1":     "DSA",
	"1.2.840.10040.4.3":     "DSA-SHA1",
	"1.2.840.10045.2.1":     "ECDSA",
	"1.2.156.10197.1.501":   "SM2-SM3",
}

func oidName(oid asn1.ObjectIdentifier) string {
	if n, ok := algorithmNames[oid.String()]; ok {
		return n
	}
	return "the algorithm with OID " + oid.String()
}

func signatureAlgorithmName(csr *x509.CertificateRequest) string {
	if csr.SignatureAlgorithm != x509.UnknownSignatureAlgorithm {
		return csr.SignatureAlgorithm.String()
	}
	var outer struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(csr.Raw, &outer); err != nil {
		return "an unknown algorithm"
	}
	return oidName(outer.Algorithm.Algorithm)
}

func keyAlgorithmName(csr *x509.CertificateRequest) string {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(csr.RawSubjectPublicKeyInfo, &spki); err != nil {
		return "an unknown type"
	}
	return oidName(spki.Algorithm.Algorithm)
}

// checkText refuses a common name or SAN with a control character or an
// invisible formatting one (Unicode Cc, Cf: a bidirectional override makes
// "Alice\u202eBob" display as another name). what names the field; kind
// is KindBadCSR for the CSR's own names.
func checkText(kind core.Kind, what, s string) error {
	i := strings.IndexFunc(s, core.Invisible)
	if i < 0 {
		return nil
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return core.Errorf(kind, "%s %q contains U+%04X, a control or formatting character (one can make a name display as another); names may not contain them", what, s, r)
}

// checkCSRText applies checkText to csr's common name and SANs, and to
// the extra SANs asked for.
func checkCSRText(csr *x509.CertificateRequest, extra []string) error {
	if err := checkText(core.KindBadCSR, "the CSR's common name", csr.Subject.CommonName); err != nil {
		return err
	}
	// The profiles copy the whole subject (organization, unit, ...), not
	// only its common name.
	for _, atv := range csr.Subject.Names {
		if v, ok := atv.Value.(string); ok {
			if err := checkText(core.KindBadCSR, "the CSR's subject attribute "+attributeName(atv.Type), v); err != nil {
				return err
			}
		}
	}
	for _, n := range csr.DNSNames {
		if err := checkText(core.KindBadCSR, "the CSR's DNS name", n); err != nil {
			return err
		}
	}
	for _, n := range csr.EmailAddresses {
		if err := checkText(core.KindBadCSR, "the CSR's email address", n); err != nil {
			return err
		}
	}
	for _, u := range csr.URIs {
		// The text as sent: the escaped form would hide the character.
		text := u.String()
		if raw, err := url.PathUnescape(text); err == nil {
			text = raw
		}
		if err := checkText(core.KindBadCSR, "the CSR's URI", text); err != nil {
			return err
		}
	}
	for _, n := range extra {
		if err := checkText(core.KindMalformed, "extra SAN", n); err != nil {
			return err
		}
	}
	return nil
}

// Short names of subject attributes (RFC 4519), for refusals.
var attributeNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
	"2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.17": "postalCode",
	"1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

func attributeName(oid asn1.ObjectIdentifier) string {
	if n, ok := attributeNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}
