package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
)

// TestNamesCheckedAsIssued: the CA puts every name into the certificate by
// its text (x509util.SplitSANs: IP, URI with a scheme, email with "@",
// otherwise DNS), not by the SAN type the CSR declared. Policy must check
// each name as the type it will have in the certificate, or a CSR could
// smuggle an IP address in as a DNS SAN, or a DNS name in as an email or
// scheme-less URI SAN.
func TestNamesCheckedAsIssued(t *testing.T) {
	c, _ := newCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(tmpl *x509.CertificateRequest) *x509.CertificateRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	cases := []struct {
		name   string
		policy Policy
		csr    *x509.CertificateRequest
	}{
		{"IP address as a DNS SAN", Policy{}, mk(&x509.CertificateRequest{DNSNames: []string{"10.0.0.1"}})},
		{"DNS name as an email SAN", Policy{AllowedDNSSuffixes: []string{"corp.internal"}, AllowEmailSANs: true},
			mk(&x509.CertificateRequest{DNSNames: []string{"a.corp.internal"}, EmailAddresses: []string{"evil.org"}})},
		{"DNS name as a URI SAN", Policy{AllowedDNSSuffixes: []string{"corp.internal"}, AllowURISANs: true},
			mk(&x509.CertificateRequest{DNSNames: []string{"a.corp.internal"}, URIs: []*url.URL{{Path: "evil.org"}}})},
		{"URI as an email SAN", Policy{AllowedDNSSuffixes: []string{"corp.internal"}, AllowEmailSANs: true},
			mk(&x509.CertificateRequest{DNSNames: []string{"a.corp.internal"}, EmailAddresses: []string{"mailto:x@corp.internal"}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(Options{CA: c, Policy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			iss, err := a.Issue(context.Background(), Request{CSR: tc.csr, Principal: "apikey:x"})
			if err == nil {
				cert := iss.Certificate
				t.Fatalf("issued: DNS %q IP %v email %q URI %v", cert.DNSNames, cert.IPAddresses, cert.EmailAddresses, cert.URIs)
			}
			if core.KindOf(err) != core.KindRejected {
				t.Fatalf("Issue: %v, want a policy refusal", err)
			}
		})
	}
}

// TestClientCommonNameChecked: a tls-client certificate copies its common
// name as sent; one that reads as a host must pass the policy like a SAN,
// though it is not added as one.
func TestClientCommonNameChecked(t *testing.T) {
	c, _ := newCA(t)
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// IDNA reads the fullwidth and ideographic full stops as dots.
	for _, cn := range []string{"evil.org", "db.secret.example.com", "8.8.8.8", "DB.Secret.Example.com", "evil\uff0ecom", "evil\u3002org"} {
		_, err := a.Issue(context.Background(), Request{CSR: csrFor(t, key, cn, "c.corp.internal"), Profile: "tls-client", Principal: "apikey:x"})
		if core.KindOf(err) != core.KindRejected || !strings.Contains(err.Error(), strings.ToLower(cn)) {
			t.Errorf("CN %s: %v, want a policy refusal naming it", cn, err)
		}
	}
	for _, cn := range []string{"alice", "Build Bot", "svc.corp.internal", "c.corp.internal"} {
		iss, err := a.Issue(context.Background(), Request{CSR: csrFor(t, key, cn, "c.corp.internal"), Profile: "tls-client", Principal: "apikey:x"})
		if err != nil {
			t.Fatalf("CN %s: %v", cn, err)
		}
		if iss.Certificate.Subject.CommonName != cn || len(iss.Certificate.DNSNames) != 1 {
			t.Errorf("CN %s: certificate has CN %q, DNS names %q", cn, iss.Certificate.Subject.CommonName, iss.Certificate.DNSNames)
		}
	}
}

// An ACME dns identifier that is an IP address would end up an IP SAN:
// it is refused as a DNS name.
func TestDNSIdentifierThatIsAnIP(t *testing.T) {
	c, _ := newCA(t)
	a, err := New(Options{CA: c, Policy: Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"10.0.0.1", "*.10.0.0.1"} {
		err := a.CheckIdentifiers(context.Background(), "acme:x", "", []Identifier{{Type: "dns", Value: v}})
		if core.KindOf(err) != core.KindRejected {
			t.Errorf("dns identifier %s: %v, want a refusal", v, err)
		}
	}
}

// TestIDNALabels: a label in A-label form (xn--) must be an IDNA2008
// A-label: punycode that decodes to a valid U-label and encodes back to
// the same text. Before, any LDH text passed: xn--zz (not punycode) was
// validated over ACME and then refused at finalize by a lint, and xn--a
// (U+0080, a C1 control) was issued.
func TestIDNALabels(t *testing.T) {
	c, _ := newCA(t)
	a, err := New(Options{CA: c, Policy: Policy{AllowWildcards: true}})
	if err != nil {
		t.Fatal(err)
	}
	for name, ok := range map[string]bool{
		"xn--bcher-kva.example.com":  true, // bücher
		"xn--mnchen-3ya.example.com": true, // münchen
		"xn--90a3ac.example.com":     true, // срб
		"a.xn--90a3ac":               true,
		"xn--zz.localhost":           false, // not punycode
		"xn--a.localhost":            false, // U+0080
		"xn--ls8h.example.com":       false, // an emoji: UTS #46 lets it through, IDNA2008 does not
		"xn--a-ecp.example.com":      false, // U+2488, disallowed
		"xn--bcher-kva9.example.com": false, // trailing garbage
		"*.xn--zz.example.com":       false,
	} {
		err := a.CheckIdentifiers(context.Background(), "acme:x", "", []Identifier{{Type: "dns", Value: name}})
		if ok && err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !ok && (core.KindOf(err) != core.KindRejected || !strings.Contains(err.Error(), "A-label")) {
			t.Errorf("%s: %v, want a refusal naming the A-label", name, err)
		}
	}
	if _, err := ParseDNSSuffix("xn--zz.example.com"); err == nil {
		t.Error("an invalid A-label was accepted as a policy suffix")
	}
}
