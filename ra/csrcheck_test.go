package ra

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
)

// TestUnsupportedAlgorithmNamed: a CSR whose signature is valid but made
// with an algorithm this CA does not implement or refuses (the files are
// openssl's: Ed448, DSA, an RSASSA-PSS key, MD5 with RSA, ECDSA with
// SHA-1, which Go verifies but Let's Encrypt refuses) is refused as
// badCSR naming the algorithm, not as a signature that does not verify; a
// tampered signature still is one.
func TestUnsupportedAlgorithmNamed(t *testing.T) {
	c, _ := newCA(t)
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"csr-ed448.der": "the CSR's public key (Ed448) is of a type this CA does not accept",
		"csr-pss.der":   "the CSR's public key (RSASSA-PSS) is of a type this CA does not accept",
		"csr-dsa.der":   "the CSR is signed with DSA-SHA256, which this CA does not accept; use ECDSA",
		"csr-md5.der":   "the CSR is signed with MD5-RSA, which this CA does not accept; use ECDSA",
		"csr-sha1.der":  "the CSR is signed with ECDSA-SHA1, which this CA does not accept (SHA-1 is broken); use ECDSA",
		// openssl's default PSS salt: as long as fits, not the hash's.
		"csr-pss-maxsalt.der": "the CSR is signed with RSASSA-PSS parameters this CA does not accept: the salt must be as long as the hash",
	} {
		der, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ParseCSR(der)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		_, err = a.Issue(context.Background(), Request{CSR: csr, Principal: "apikey:x"})
		if core.KindOf(err) != core.KindBadCSR || !strings.Contains(core.DetailOf(err), want) {
			t.Errorf("%s: %v (%s), want badCSR %q", file, err, core.KindOf(err), want)
		}
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := csrFor(t, k, "", "a.corp.internal")
	bad.Signature[10] ^= 1
	_, err = a.Issue(context.Background(), Request{CSR: bad, Principal: "apikey:x"})
	if core.KindOf(err) != core.KindBadCSR || !strings.Contains(core.DetailOf(err), "signature does not verify") {
		t.Errorf("tampered signature: %v", err)
	}
}

// TestParseCSRNoASN1Internals: bytes that are not DER PKCS #10 get a
// plain answer, never encoding/asn1's struct dump.
func TestParseCSRNoASN1Internals(t *testing.T) {
	garbage := append([]byte{0x30, 0x82, 0xff, 0xfc}, bytes.Repeat([]byte{0x41}, 64<<10-4)...)
	for _, b := range [][]byte{garbage, {0x30, 0x03, 0x02, 0x01, 0x00}, {0x30, 0x00}} {
		_, err := ParseCSR(b)
		d := core.DetailOf(err)
		if core.KindOf(err) != core.KindMalformed || d != notPKCS10 {
			t.Errorf("%x...: %q, want %q", b[:2], d, notPKCS10)
		}
	}
}

// TestInvisibleCharactersRefused: a common name or SAN with a control or
// formatting character (a right-to-left override shows "Alice\u202eBob"
// as another name) is refused, naming the code point, wherever issuance
// comes from (ra checks it, not a front end).
func TestInvisibleCharactersRefused(t *testing.T) {
	c, _ := newCA(t)
	p := testPolicy
	p.AllowExtraSANs = true
	a, err := New(Options{CA: c, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()
	for _, tc := range []struct {
		req  Request
		kind core.Kind
		code string
	}{
		{Request{CSR: csrFor(t, k, "Alice\u202eBob", "c.corp.internal"), Profile: "tls-client"}, core.KindBadCSR, "U+202E"},
		{Request{CSR: csrFor(t, k, "Alice\u200bBob", "c.corp.internal"), Profile: "tls-client"}, core.KindBadCSR, "U+200B"},
		{Request{CSR: csrFor(t, k, "Alice\x07", "c.corp.internal"), Profile: "tls-client"}, core.KindBadCSR, "U+0007"},
		{Request{CSR: csrFor(t, k, "", "c.corp.internal", "spiffe://corp.internal/a\u202eb")}, core.KindBadCSR, "U+202E"},
		{Request{CSR: csrFor(t, k, "", "c.corp.internal"), ExtraSANs: []string{"d\u202e.corp.internal"}}, core.KindMalformed, "U+202E"},
	} {
		tc.req.Principal = "apikey:x"
		_, err := a.Issue(ctx, tc.req)
		if core.KindOf(err) != tc.kind || !strings.Contains(core.DetailOf(err), tc.code) {
			t.Errorf("CN %q, SANs %q %v, extra %q: %v (%s), want %s naming %s", tc.req.CSR.Subject.CommonName, tc.req.CSR.DNSNames, tc.req.CSR.URIs,
				tc.req.ExtraSANs, err, core.KindOf(err), tc.kind, tc.code)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "c.corp.internal", Organization: []string{"Evil\u202eCorp"}}, DNSNames: []string{"c.corp.internal"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	orgCSR, _ := ParseCSR(der)
	if _, err := a.Issue(ctx, Request{CSR: orgCSR, Principal: "apikey:x"}); core.KindOf(err) != core.KindBadCSR || !strings.Contains(core.DetailOf(err), "attribute O ") {
		t.Errorf("organization with U+202E: %v", err)
	}
	if _, err := a.Issue(ctx, Request{CSR: csrFor(t, k, "Alice Bob – Ünïcode", "c.corp.internal"), Profile: "tls-client", Principal: "apikey:x"}); err != nil {
		t.Fatalf("printable Unicode common name: %v", err)
	}
}

// TestIPWithZoneRefused: fd00::1%eth0 is an IP address with a zone, not a
// URI with scheme fd00; it is refused saying so, as an extra SAN and as an
// ACME identifier.
func TestIPWithZoneRefused(t *testing.T) {
	c, _ := newCA(t)
	p := testPolicy
	p.AllowExtraSANs, p.AllowURISANs = true, true
	a, err := New(Options{CA: c, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err = a.Issue(context.Background(), Request{CSR: csrFor(t, k, "", "c.corp.internal"), ExtraSANs: []string{"fd00::1%eth0"}, Principal: "apikey:x"})
	var ie *IdentifierError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Identifier.Type != "ip" || !strings.Contains(ie.Problems[0].Detail, "zone (%eth0)") {
		t.Errorf("extra SAN fd00::1%%eth0: %v", err)
	}
	err = a.CheckIdentifiers(context.Background(), "acme:x", "", []Identifier{{Type: "ip", Value: "fe80::1%eth0"}})
	if !errors.As(err, &ie) || !strings.Contains(ie.Problems[0].Detail, "zone (%eth0)") {
		t.Errorf("identifier fe80::1%%eth0: %v", err)
	}
}
