package ca

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// testHierarchy makes a root and an intermediate with keys of type typ.
func testHierarchy(t testing.TB, typ string) (root, inter *Issuer) {
	t.Helper()
	ctx := context.Background()
	rk, ik := testKey(t, typ), freshKeyOf(t, typ)
	rc, err := NewRoot(ctx, rk, RootOptions{CommonName: "Test Root " + typ, Organization: "Strongroom Test"})
	if err != nil {
		t.Fatalf("NewRoot(%s): %v", typ, err)
	}
	root, err = NewIssuer("root", rk, []*x509.Certificate{rc})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := NewIntermediate(ctx, root, ik.Public(), IntermediateOptions{
		CommonName: "Test Intermediate " + typ, Organization: "Strongroom Test",
		CAIssuerURLs: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"},
		CRLURLs:      []string{"http://127.0.0.1:8080/crl/{issuer}.crl"},
	})
	if err != nil {
		t.Fatalf("NewIntermediate(%s): %v", typ, err)
	}
	inter, err = NewIssuer("intermediate", ik, []*x509.Certificate{ic, rc})
	if err != nil {
		t.Fatal(err)
	}
	return root, inter
}

func TestRootAndIntermediateAreLintClean(t *testing.T) {
	l, err := NewLinter(LintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range caKeyTypes {
		t.Run(typ, func(t *testing.T) {
			root, inter := testHierarchy(t, typ)
			for _, c := range []*x509.Certificate{root.Certificate(), inter.Certificate()} {
				f, err := l.Lint(c.Raw)
				if err != nil {
					t.Fatal(err)
				}
				if bad := f.Refusals(); len(bad) > 0 {
					t.Errorf("%s: lints fail: %s", c.Subject.CommonName, strings.Join(bad, ", "))
				}
			}
			ic := inter.Certificate()
			if ic.MaxPathLen != 0 || !ic.MaxPathLenZero || !ic.IsCA {
				t.Errorf("intermediate basic constraints: CA=%v pathlen=%d zero=%v", ic.IsCA, ic.MaxPathLen, ic.MaxPathLenZero)
			}
			if ic.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("intermediate key usage %b lacks certSign|crlSign", ic.KeyUsage)
			}
			if len(ic.CRLDistributionPoints) != 1 || ic.CRLDistributionPoints[0] != "http://127.0.0.1:8080/crl/root.crl" {
				t.Errorf("intermediate CRL DP = %v", ic.CRLDistributionPoints)
			}
			pool := x509.NewCertPool()
			pool.AddCert(root.Certificate())
			if _, err := ic.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("intermediate does not verify against root: %v", err)
			}
		})
	}
}

func TestIntermediateDefaultsAndErrors(t *testing.T) {
	ctx := context.Background()
	root, _ := testHierarchy(t, "p256")
	k := freshKey(t, "p256")
	ic, err := NewIntermediate(ctx, root, k.Public(), IntermediateOptions{CommonName: "x", Lifetime: 100 * 365 * 24 * time.Hour,
		CRLURLs: []string{"http://x/crl"}, CAIssuerURLs: []string{"http://x/crt"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ic.ExtKeyUsage) != 2 || ic.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || ic.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("default EKU = %v, want serverAuth, clientAuth", ic.ExtKeyUsage)
	}
	if ic.NotAfter.After(root.Certificate().NotAfter) {
		t.Errorf("intermediate outlives its root: %v > %v", ic.NotAfter, root.Certificate().NotAfter)
	}
	if _, err := NewIntermediate(ctx, root, k.Public(), IntermediateOptions{}); err == nil {
		t.Error("NewIntermediate without a common name: no error")
	}
	if _, err := NewIntermediate(ctx, root, k.Public(), IntermediateOptions{CommonName: "x"}); err == nil {
		t.Error("NewIntermediate without CRL and AIA URLs: no error")
	}
	if _, err := NewIntermediate(ctx, root, freshKey(t, "ed25519").Public(), IntermediateOptions{CommonName: "x",
		CRLURLs: []string{"http://x/crl"}, CAIssuerURLs: []string{"http://x/crt"}}); err == nil {
		t.Error("NewIntermediate with an Ed25519 key: no error")
	}
	if _, err := NewRoot(ctx, k, RootOptions{}); err == nil {
		t.Error("NewRoot without a common name: no error")
	}
	if _, err := NewIssuer("intermediate", k, []*x509.Certificate{root.Certificate()}); err == nil {
		t.Error("NewIssuer with a signer that does not match the certificate: no error")
	}
}

// TestOptionsRefused: options that would make every certificate wrong, or
// silently do nothing, are refused by New with a message saying which.
func TestOptionsRefused(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	root, inter := testHierarchy(t, "p256")
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"negative backdate", func(o *Options) { o.Backdate = -time.Hour }, "backdate -1h0m0s is negative"},
		{"relative URL", func(o *Options) { o.URLs.OCSP = []string{"/ocsp"} }, `URL "/ocsp" is not an absolute`},
		{"not a URL", func(o *Options) { o.URLs.CRL = []string{"not a url"} }, `URL "not a url"`},
		{"ldap URL", func(o *Options) { o.URLs.CAIssuers = []string{"ldap://dir/{issuer}"} }, `URL "ldap://dir/{issuer}"`},
		{"unknown lint", func(o *Options) { o.Lint.ExtraExcluded = []string{"e_no_such_lint"} }, `"e_no_such_lint" is not a zlint lint`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Store: db, Issuers: []*Issuer{inter, root}, URLs: testURLs}
			tc.mod(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
	o := Options{Store: db, Issuers: []*Issuer{inter, root}, URLs: testURLs,
		Lint: LintOptions{ExtraExcluded: []string{"w_sub_cert_aia_does_not_contain_issuing_ca_url"}}}
	if _, err := New(o); err != nil {
		t.Fatalf("a real lint to exclude: %v", err)
	}
}

// TestProfileOverride: a profile named like a built-in changes only what
// it sets; the template, CA flag, key types and description come from the
// built-in. A new profile still needs a template.
func TestProfileOverride(t *testing.T) {
	m, err := mergeProfiles([]Profile{
		{Name: "tls-server", DefaultLifetime: 30 * day, MaxLifetime: 60 * day},
		{Name: "subordinate-ca", Description: "team CAs"},
	})
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]Profile{}
	for _, p := range DefaultProfiles() {
		builtin[p.Name] = p
	}
	ts := m["tls-server"]
	if ts.DefaultLifetime != 30*day || ts.MaxLifetime != 60*day || ts.Template != builtin["tls-server"].Template ||
		!slices.Equal(ts.KeyTypes, builtin["tls-server"].KeyTypes) || ts.Description != builtin["tls-server"].Description {
		t.Fatalf("tls-server override: %+v", ts)
	}
	sub := m["subordinate-ca"]
	if !sub.CA || sub.Description != "team CAs" || sub.MaxLifetime != builtin["subordinate-ca"].MaxLifetime {
		t.Fatalf("subordinate-ca override: %+v", sub)
	}
	if _, err := mergeProfiles([]Profile{{Name: "tls-server", DefaultLifetime: 500 * day}}); err == nil ||
		!strings.Contains(err.Error(), "is below default_lifetime") {
		t.Fatalf("a default over the inherited maximum: %v", err)
	}
	if _, err := mergeProfiles([]Profile{{Name: "team-server", DefaultLifetime: day}}); err == nil || !strings.Contains(err.Error(), "no template") {
		t.Fatalf("a new profile without a template: %v", err)
	}
}

// TestAnchor: an external root is its certificate alone: it must be a
// self-signed CA, it signs nothing here, and the chains below it carry its
// name constraints.
func TestAnchor(t *testing.T) {
	ctx := context.Background()
	root, inter := testHierarchy(t, "p256")
	a, err := NewAnchor("offline", root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	if !a.External() || a.Signer() != nil || root.External() {
		t.Errorf("External: anchor %v (signer %v), root with its key %v", a.External(), a.Signer(), root.External())
	}
	if _, err := NewIntermediate(ctx, a, freshKey(t, "p256").Public(), IntermediateOptions{CommonName: "x",
		CRLURLs: []string{"http://x/crl"}, CAIssuerURLs: []string{"http://x/crt"}}); err == nil || !strings.Contains(err.Error(), "is not here") {
		t.Errorf("NewIntermediate under an anchor: %v", err)
	}
	if _, err := NewAnchor("offline", inter.Certificate()); err == nil || !strings.Contains(err.Error(), "not self-signed") {
		t.Errorf("NewAnchor of an intermediate: %v", err)
	}
	constrained, err := NewRoot(ctx, freshKey(t, "p256"), RootOptions{CommonName: "c", NameConstraints: NameConstraints{PermittedDNS: []string{"corp.internal"}}})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewAnchor("c", constrained)
	if err != nil {
		t.Fatal(err)
	}
	if why := ca.NameRefusal("dns", "www.example.com"); why == "" {
		t.Error("an anchor's name constraints are not applied")
	}
}

// TestExpiredChainRefused: an issuer whose chain has ended issues nothing,
// and says so as the CA's state, not as a fault of the request (a review
// saw "lifetime -1m1s is under the minimum" instead).
func TestExpiredChainRefused(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	c, _, inter := newTestCA(t, db, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(11 * 365 * 24 * time.Hour) }
	})
	csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	// Named: a request naming none would pass over the expired issuer
	// (TestRevokedDefaultFallsBackToSpare).
	_, err := c.Issue(context.Background(), Request{CSR: csr, Profile: "tls-server", Issuer: inter.ID(), Requester: "test"})
	if core.KindOf(err) != core.KindUnavailable || !strings.Contains(err.Error(), "issuer "+inter.ID()+"'s chain expired") {
		t.Fatalf("issuing past the chain's end: %v", err)
	}
}
