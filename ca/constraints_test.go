package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestParseNameConstraints(t *testing.T) {
	nc, err := ParseNameConstraints(
		[]string{"dns:Corp.Internal", "ip:10.0.0.0/8", "ip:fd00::/8", "email:corp.example", "email:.corp.example", "email:Alice@Corp.Example", "uri:.corp.internal"},
		[]string{"dns:secret.corp.internal", "dns:", "ip:0.0.0.0/0", "dns:secret.corp.internal"})
	if err != nil {
		t.Fatal(err)
	}
	want := "permit dns:corp.internal, permit ip:10.0.0.0/8, permit ip:fd00::/8, permit email:corp.example, permit email:.corp.example, " +
		"permit email:Alice@corp.example, permit uri:.corp.internal, exclude dns:secret.corp.internal, exclude dns:, " +
		"exclude ip:0.0.0.0/0"
	if got := nc.String(); got != want {
		t.Fatalf("String:\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct{ permit, exclude, why string }{
		{"corp.internal", "", "write it type:value"},
		{"dns:.corp.internal", "", "without the leading dot"},
		{"dns:", "", "leave it out to permit every name"},
		{"dns:bad name", "", "not a DNS name"},
		{"ip:10.0.0.1/8", "", "host bits are set: write 10.0.0.0/8"},
		{"ip:10.0.0.1", "", "not an address prefix"},
		{"email:@corp.example", "", "want a host"},
		{"uri:https://corp.internal/", "", "URI constraints name the URI's host"},
		{"", "dirname:CN=x", "unknown type dirname"},
		{"", "uri:bad.corp.internal", "GnuTLS refuses every URI SAN"},
		{"uri:localhost", "", "want a fully qualified host"},
		{"uri:_svc.corp.internal", "", "want a fully qualified host"},
		{"ip:::ffff:10.0.0.0/104", "", "IPv4-mapped"},
	} {
		var p, x []string
		if tc.permit != "" {
			p = []string{tc.permit}
		}
		if tc.exclude != "" {
			x = []string{tc.exclude}
		}
		_, err := ParseNameConstraints(p, x)
		if core.KindOf(err) != core.KindMalformed || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%q/%q: got %v, want a malformed error saying %q", tc.permit, tc.exclude, err, tc.why)
		}
	}
}

// constrainedHierarchy makes a root with rootNC and an intermediate with
// interNC under it.
func constrainedHierarchy(t *testing.T, rootNC, interNC NameConstraints) (root, inter *Issuer) {
	t.Helper()
	ctx := context.Background()
	rk, ik := freshKey(t, "p256"), freshKey(t, "p256")
	rc, err := NewRoot(ctx, rk, RootOptions{CommonName: "Constrained Root", Organization: "Strongroom Test", NameConstraints: rootNC})
	if err != nil {
		t.Fatalf("NewRoot: %v", err)
	}
	if root, err = NewIssuer("root", rk, []*x509.Certificate{rc}); err != nil {
		t.Fatal(err)
	}
	ic, err := NewIntermediate(ctx, root, ik.Public(), IntermediateOptions{
		CommonName: "Constrained Intermediate", Organization: "Strongroom Test",
		CAIssuerURLs:    []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"},
		CRLURLs:         []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
		NameConstraints: interNC,
	})
	if err != nil {
		t.Fatalf("NewIntermediate: %v", err)
	}
	if inter, err = NewIssuer("intermediate", ik, []*x509.Certificate{ic, rc}); err != nil {
		t.Fatal(err)
	}
	return root, inter
}

func mustConstraints(t *testing.T, permit, exclude []string) NameConstraints {
	t.Helper()
	nc, err := ParseNameConstraints(permit, exclude)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestNameConstraintsAgainstGo compares Issuer.NameRefusal with Go's own
// chain verification, name by name: whatever NameRefusal allows, Go must
// accept; where it is stricter (RFC 5280's reading, which OpenSSL
// has and Go does not), the difference is listed.
func TestNameConstraintsAgainstGo(t *testing.T) {
	rootNC := mustConstraints(t,
		[]string{"dns:corp.internal", "ip:10.0.0.0/8", "email:corp.example", "email:.mail.corp.example", "uri:corp.internal", "uri:.apps.corp.internal"},
		[]string{"dns:secret.corp.internal", "ip:10.9.0.0/16"})
	interNC := mustConstraints(t, nil, []string{"dns:old.corp.internal", "email:bob@corp.example", "email:old.corp.example"})
	root, inter := constrainedHierarchy(t, rootNC, interNC)
	for _, c := range []*x509.Certificate{root.Certificate(), inter.Certificate()} {
		if !c.PermittedDNSDomainsCritical {
			t.Errorf("%s: name constraints not critical", c.Subject.CommonName)
		}
	}
	if got := inter.NameConstraints().String(); got != interNC.String() {
		t.Errorf("intermediate's constraints read back as %q, want %q", got, interNC.String())
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.Certificate())
	// Refused here, accepted by Go: Go reads a permitted email or URI
	// host as that host and the hosts under it; RFC 5280 and OpenSSL as
	// that host only.
	// And URIs OpenSSL reads with another host; a mailbox an excluded one
	// matches without case (NSS refuses it); a quoted local part (Go reads
	// "alice" as alice; only dot-atom ones are issued below constraints).
	stricter := map[string]bool{"a@sub.corp.example": true, "https://deep.corp.internal/x": true,
		"https://user@corp.internal/": true, "https://corp.internal?x=1": true, "https://corp.internal/a:b": true,
		"Bob@corp.example": true, `"alice"@corp.example`: true}
	names := []struct {
		kind, name string
		ok         bool
	}{
		{"dns", "corp.internal", true},
		{"dns", "www.corp.internal", true},
		{"dns", "*.apps.corp.internal", true},
		{"dns", "www.example.com", false},
		{"dns", "evilcorp.internal", false},
		{"dns", "secret.corp.internal", false},
		{"dns", "a.secret.corp.internal", false},
		{"dns", "*.secret.corp.internal", false},
		{"dns", "*.corp.internal", false},
		{"dns", "x.old.corp.internal", false},
		{"ip", "10.1.2.3", true},
		{"ip", "10.9.1.1", false},
		{"ip", "192.168.1.1", false},
		{"ip", "fd00::1", false},
		{"email", "alice@corp.example", true},
		{"email", "a@x.mail.corp.example", true},
		{"email", "a@sub.corp.example", false},
		{"email", "bob@corp.example", false},
		{"email", "alice@corp.example.evil", false},
		{"uri", "spiffe://corp.internal/ns/a", true},
		{"uri", "https://x.apps.corp.internal/x", true},
		{"uri", "https://deep.corp.internal/x", false},
		{"uri", "https://corp.internal.evil/", false},
		{"uri", "https://corp.internal:8443/x", true},
		{"uri", "https://user@corp.internal/", false},
		{"uri", "https://corp.internal?x=1", false},
		{"uri", "https://corp.internal/a:b", false},
		{"email", "Bob@corp.example", false},
		{"email", "a@x.old.corp.example", false},
		{"email", "a..b@corp.example", false},
		{"email", `"alice"@corp.example`, false},
		{"uri", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", false},
		{"uri", "https://10.1.2.3/", false},
	}
	for _, n := range names {
		why := inter.NameRefusal(n.kind, n.name)
		if (why == "") != n.ok {
			t.Errorf("NameRefusal(%s %s) = %q, want ok=%v", n.kind, n.name, why, n.ok)
			continue
		}
		goErr := verifyLeafWith(t, inter, n.kind, n.name, pool)
		switch {
		case n.ok && goErr != nil:
			t.Errorf("%s %s: allowed here, but Go refuses the chain: %v", n.kind, n.name, goErr)
		case !n.ok && goErr == nil && !stricter[n.name]:
			t.Errorf("%s %s: refused here, but Go accepts it (not listed as stricter)", n.kind, n.name)
		case !n.ok && goErr != nil && stricter[n.name]:
			t.Errorf("%s %s: listed as stricter than Go, but Go refuses it too", n.kind, n.name)
		}
	}
}

// verifyLeafWith signs a leaf with the one name under inter, outside the
// pipeline, and verifies it with Go.
func verifyLeafWith(t *testing.T, inter *Issuer, kind, name string, roots *x509.CertPool) error {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	switch kind {
	case "dns":
		tmpl.DNSNames = []string{name}
	case "ip":
		tmpl.IPAddresses = []net.IP{net.ParseIP(name)}
	case "email":
		tmpl.EmailAddresses = []string{name}
	case "uri":
		u, err := url.Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	key := testKey(t, "p256")
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter.Certificate(), key.Public(), inter.Signer())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	inters := x509.NewCertPool()
	inters.AddCert(inter.Certificate())
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// TestPipelineKeepsWithinNameConstraints: the pipeline refuses a name its
// issuer's chain does not allow before reserving anything, and issues
// lint-clean certificates inside.
func TestPipelineKeepsWithinNameConstraints(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	root, inter := constrainedHierarchy(t,
		mustConstraints(t, []string{"dns:corp.internal", "ip:10.0.0.0/8"}, nil),
		mustConstraints(t, nil, []string{"dns:secret.corp.internal"}))
	// A profile that writes its own subjectAltName (DNS:evil.com) is held
	// to the constraints as the certificate will carry it.
	rawSAN := Profile{Name: "raw-san", DefaultLifetime: 24 * time.Hour, Template: `{"subject": {"commonName": "svc"},
		"extensions": [{"id": "2.5.29.17", "value": "MAqCCGV2aWwuY29t"}],
		"keyUsage": ["digitalSignature"], "extKeyUsage": ["clientAuth"]}`}
	c, err := New(Options{Store: db, Issuers: []*Issuer{inter, root}, URLs: testURLs, Profiles: []Profile{rawSAN}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := testKey(t, "p256")
	for _, tc := range []struct {
		profile, cn string
		names       []string
		why         string
	}{
		{"tls-server", "www.example.com", []string{"www.example.com"}, `"www.example.com" is outside the permitted DNS subtrees corp.internal: issuer intermediate cannot issue it (name constraints of "Constrained Root")`},
		{"tls-server", "", []string{"app.corp.internal", "db.secret.corp.internal"}, `inside the excluded DNS subtree "secret.corp.internal"`},
		{"tls-server", "", []string{"192.168.0.1"}, "outside the permitted IP ranges 10.0.0.0/8"},
		// A tls-client common name is copied as sent; one that reads as a
		// host is held to the constraints too (OpenSSL checks it).
		{"tls-client", "www.example.com", nil, `"www.example.com" is outside the permitted DNS subtrees`},
		// OpenSSL reads an IPv4 common name as a DNS name when there is
		// no DNS SAN.
		{"tls-client", "10.1.2.3", []string{"10.1.2.3"}, `"10.1.2.3" is outside the permitted DNS subtrees`},
		{"raw-san", "", []string{"app.corp.internal"}, `"evil.com" is outside the permitted DNS subtrees`},
	} {
		req := Request{CSR: makeCSR(t, key, tc.cn, tc.names...), Profile: tc.profile}
		_, err := c.Issue(ctx, req)
		if core.KindOf(err) != core.KindRejected || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s %v: got %v, want rejected with %q", tc.profile, tc.names, err, tc.why)
		}
		if d, err := c.DryRun(ctx, req); err == nil {
			t.Errorf("dry run of %v: got a draft %v, want the refusal", tc.names, d.Certificate.DNSNames)
		}
	}
	if n := countRows(t, db, core.StatusReserved) + countIntents(t, db); n != 0 {
		t.Fatalf("%d rows reserved or intents recorded for refused requests", n)
	}
	// An address common name is left out (it stays a SAN): OpenSSL would
	// read it as a DNS name outside dns:corp.internal, and zlint refuses a
	// private one in the subject.
	ipOnly, err := c.Issue(ctx, Request{CSR: makeCSR(t, key, "10.1.2.3", "10.1.2.3"), Profile: "tls-server"})
	if err != nil || ipOnly.Certificate.Subject.CommonName != "" {
		t.Fatalf("an address common name: %v", err)
	}
	got, err := c.Issue(ctx, Request{CSR: makeCSR(t, key, "app.corp.internal", "app.corp.internal", "10.1.2.3", "*.apps.corp.internal"), Profile: "tls-server"})
	if err != nil {
		t.Fatalf("issuing inside the constraints: %v", err)
	}
	if !slices.Equal(got.Certificate.DNSNames, []string{"app.corp.internal", "*.apps.corp.internal"}) {
		t.Fatalf("DNS names %v", got.Certificate.DNSNames)
	}
}

// TestIntermediatePathLen: an intermediate made with PathLen 1 may have
// CAs below it (the pipeline's subordinate-ca profile then works from it).
func TestIntermediatePathLen(t *testing.T) {
	ctx := context.Background()
	root, _ := testHierarchy(t, "p256")
	o := IntermediateOptions{CommonName: "Path 1", CAIssuerURLs: []string{"http://ca/{issuer}.crt"}, CRLURLs: []string{"http://ca/{issuer}.crl"}, PathLen: 1}
	ik := freshKey(t, "p256")
	ic, err := NewIntermediate(ctx, root, ik.Public(), o)
	if err != nil {
		t.Fatal(err)
	}
	if ic.MaxPathLen != 1 || ic.MaxPathLenZero {
		t.Fatalf("path length %d (zero %v), want 1", ic.MaxPathLen, ic.MaxPathLenZero)
	}
	inter, err := NewIssuer("path1", ik, []*x509.Certificate{ic, root.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	db, _ := storagetest.SQLite(t)
	c, err := New(Options{Store: db, Issuers: []*Issuer{inter, root}, URLs: testURLs})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Issue(ctx, Request{CSR: makeCSR(t, testKey(t, "p256"), "Team CA"), Profile: "subordinate-ca"})
	if err != nil || !got.Certificate.IsCA {
		t.Fatalf("a subordinate CA from a path-length-1 intermediate: %v", err)
	}
	o.PathLen = -1
	if _, err := NewIntermediate(ctx, root, freshKey(t, "p256").Public(), o); err == nil {
		t.Fatal("a negative path length was accepted")
	}
}
