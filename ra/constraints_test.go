package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestIssuerNameConstraints: names the default issuer's name constraints
// do not allow are refused like names outside policy — at ACME's
// new-order (CheckIdentifiers), at REST issuance and at dry run — even
// where the policy allows them.
func TestIssuerNameConstraints(t *testing.T) {
	nc, err := ca.ParseNameConstraints([]string{"dns:corp.internal"}, []string{"dns:secret.corp.internal", "ip:0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	root, inter := catest.ConstrainedHierarchy(t, "NC Test", nc)
	db, _ := storagetest.SQLite(t)
	c, err := ca.New(ca.Options{Store: db, Issuers: []*ca.Issuer{inter, root},
		URLs: ca.URLs{CAIssuers: []string{"http://ca.internal/{issuer}.crt"}, CRL: []string{"http://ca.internal/crl/{issuer}.crl"}}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{CA: c, Policy: testPolicy}) // allows example.com and 10.0.0.0/8
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = a.CheckIdentifiers(ctx, "acme:default/1", "tls-server", []Identifier{
		{Type: "dns", Value: "a.corp.internal"}, {Type: "dns", Value: "www.example.com"},
		{Type: "dns", Value: "x.secret.corp.internal"}, {Type: "ip", Value: "10.1.1.1"}})
	var ie *IdentifierError
	if !errors.As(err, &ie) || len(ie.Problems) != 3 {
		t.Fatalf("CheckIdentifiers = %v, want three refused identifiers", err)
	}
	for i, want := range []string{"outside the permitted DNS subtrees corp.internal", `inside the excluded DNS subtree "secret.corp.internal"`, "inside the excluded IP range 0.0.0.0/0"} {
		if p := ie.Problems[i]; !strings.Contains(p.Detail, want) || !strings.Contains(p.Detail, `issuer intermediate cannot issue it (name constraints of "NC Test Intermediate")`) {
			t.Errorf("problem %d: %q, want it to say %q and name the issuer", i, p.Detail, want)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := Request{CSR: csrFor(t, key, "", "www.example.com"), Principal: "apikey:x"}
	if _, err := a.Issue(ctx, req); core.KindOf(err) != core.KindRejected || !strings.Contains(err.Error(), "www.example.com is outside the permitted DNS subtrees") {
		t.Errorf("Issue: %v", err)
	}
	if res, err := a.DryRun(ctx, req); err != nil || res.Allowed || !strings.Contains(res.Reason, "outside the permitted DNS subtrees") {
		t.Errorf("DryRun: %+v, %v", res, err)
	}
	if _, err := a.Issue(ctx, Request{CSR: csrFor(t, key, "", "a.corp.internal"), Principal: "apikey:x"}); err != nil {
		t.Errorf("Issue inside the constraints: %v", err)
	}
}

// TestConstraintsOfTheIssuerChosen: a code-signing request naming no
// issuer goes to the code-signing intermediate, so the name constraints
// that count are that intermediate's, not the TLS default's.
func TestConstraintsOfTheIssuerChosen(t *testing.T) {
	nc, err := ca.ParseNameConstraints([]string{"dns:corp.internal"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, inter := catest.ConstrainedHierarchy(t, "NC Test", nc)
	cs := catest.CodeSigning(t, root)
	db, _ := storagetest.SQLite(t)
	c, err := ca.New(ca.Options{Store: db, Issuers: []*ca.Issuer{inter, cs, root},
		URLs: ca.URLs{CAIssuers: []string{"http://ca.internal/{issuer}.crt"}, CRL: []string{"http://ca.internal/crl/{issuer}.crl"}}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{CA: c, Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := a.Issue(ctx, Request{CSR: csrFor(t, key, "build.example.com"), Profile: "code-signing", Principal: "apikey:builder"})
	if err != nil {
		t.Fatalf("code signing for a name outside the TLS intermediate's constraints: %v", err)
	}
	if iss.IssuerID != cs.ID() {
		t.Errorf("issued by %s, want %s", iss.IssuerID, cs.ID())
	}
	// The TLS default still refuses it for a TLS certificate.
	if _, err := a.Issue(ctx, Request{CSR: csrFor(t, key, "", "build.example.com"), Principal: "apikey:builder"}); core.KindOf(err) != core.KindRejected {
		t.Errorf("tls-server outside the default's constraints: %v", err)
	}
}
