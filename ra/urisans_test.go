package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

func TestURIPrefixes(t *testing.T) {
	prefixes := []string{}
	for _, s := range []string{"spiffe://Corp.Internal/ns/team-a/", "urn-less://host"} {
		p, err := ParseURIPrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		prefixes = append(prefixes, p)
	}
	if prefixes[0] != "spiffe://corp.internal/ns/team-a" {
		t.Fatalf("normalized prefix %q", prefixes[0])
	}
	for uri, want := range map[string]bool{
		"spiffe://corp.internal/ns/team-a":                  true,
		"spiffe://corp.internal/ns/team-a/sa/web":           true,
		"SPIFFE://CORP.internal/ns/team-a/sa/web":           true,
		"urn-less://host/anything":                          true,
		"urn-less://host":                                   true,
		"spiffe://corp.internal/ns/team-ab":                 false, // not a whole segment
		"spiffe://corp.internal/ns":                         false,
		"spiffe://corp.internal/NS/team-a":                  false, // paths are case-sensitive
		"spiffe://corp.internal/ns/team-a/../team-b":        false,
		"spiffe://corp.internal/ns/team-a/%2e%2e/team-b":    false,
		"spiffe://corp.internal/ns/team-a/./x":              false,
		"spiffe://corp.internal/ns/team-a%2f..%2fteam-b":    false,
		"spiffe://corp.internal/ns/team-a/x?y=1":            false,
		"spiffe://corp.internal/ns/team-a/x#y":              false,
		"spiffe://corp.internal.evil/ns/team-a":             false,
		"spiffe://corp.internal:8443/ns/team-a":             false,
		"spiffe://user@corp.internal/ns/team-a":             false,
		"https://corp.internal/ns/team-a":                   false,
		"spiffe:corp.internal/ns/team-a":                    false, // opaque
		"urn-less://hostile/anything":                       false,
		"urn-less://host.evil/anything":                     false,
		"spiffe://corp.internal/ns/team-a\x00/../../team-b": false,
	} {
		if got := uriUnder(uri, prefixes); got != want {
			t.Errorf("uriUnder(%q) = %v, want %v", uri, got, want)
		}
	}
	for _, bad := range []string{"corp.internal/ns", "spiffe:///ns", "spiffe:opaque", "spiffe://u@corp.internal/",
		"spiffe://corp.internal/a/../b", "spiffe://corp.internal/a?b", "spiffe://corp.internal/a#b", "spiffe://corp.internal/a%2Fb"} {
		if p, err := ParseURIPrefix(bad); err == nil {
			t.Errorf("ParseURIPrefix(%q) = %q, want an error", bad, p)
		}
	}
}

func TestEmailDomains(t *testing.T) {
	d, err := ParseEmailDomain("@Team-A.Corp.Internal")
	if err != nil || d != "team-a.corp.internal" {
		t.Fatalf("ParseEmailDomain: %q, %v", d, err)
	}
	for addr, want := range map[string]bool{
		"ops@team-a.corp.internal":      true,
		"ops@mail.team-a.corp.internal": true,
		"ops@TEAM-A.corp.internal":      true,
		"ops@team-a.corp.internal.evil": false,
		"ops@evilteam-a.corp.internal":  false,
		"a@b@team-a.corp.internal":      false,
		"@team-a.corp.internal":         false,
		"team-a.corp.internal":          false,
		"ops@team_a.corp.internal":      false,
	} {
		if got := emailUnder(addr, []string{d}); got != want {
			t.Errorf("emailUnder(%q) = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"@", "@*.corp.internal", "@corp internal", "a@corp.internal"} {
		if _, err := ParseEmailDomain(bad); err == nil {
			t.Errorf("ParseEmailDomain(%q) took it", bad)
		}
	}
}

// TestSPIFFEIdentities: policy allows URI SANs under a prefix and email
// SANs in a domain, a credential's limits narrow both, and what is issued
// carries them (lint-clean: Issue refuses a certificate with lint errors).
func TestSPIFFEIdentities(t *testing.T) {
	c, _ := newCA(t)
	pol := testPolicy
	pol.AllowedURIPrefixes = []string{"spiffe://corp.internal"}
	pol.AllowedEmailDomains = []string{"corp.internal"}
	a, err := New(Options{CA: c, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ParseLimits([]string{"team-a.corp.internal", "spiffe://corp.internal/ns/team-a", "@team-a.corp.internal"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := lim.Names(); len(got) != 3 || got[1] != "spiffe://corp.internal/ns/team-a" || got[2] != "@team-a.corp.internal" {
		t.Fatalf("Names() = %q", got)
	}
	if again, err := ParseLimits(lim.Names(), nil); err != nil || len(again.URIPrefixes) != 1 || len(again.EmailDomains) != 1 {
		t.Fatalf("Names() does not read back: %+v, %v", again, err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		names   []string
		limited bool
		kind    core.Kind // -1: issued
	}{
		{"SPIFFE ID under the policy", []string{"spiffe://corp.internal/ns/team-b/sa/web"}, false, -1},
		{"SPIFFE ID of another trust domain", []string{"spiffe://other.org/ns/team-a"}, false, core.KindRejected},
		{"email in the policy's domain", []string{"ops@team-b.corp.internal"}, false, -1},
		{"email outside it", []string{"ops@example.org"}, false, core.KindRejected},
		{"SPIFFE ID in the credential's namespace", []string{"spiffe://corp.internal/ns/team-a/sa/web", "web.team-a.corp.internal"}, true, -1},
		{"SPIFFE ID of another namespace", []string{"spiffe://corp.internal/ns/team-b/sa/web"}, true, core.KindForbidden},
		{"email in the credential's domain", []string{"ops@team-a.corp.internal"}, true, -1},
		{"email of another team", []string{"ops@team-b.corp.internal"}, true, core.KindForbidden},
	} {
		req := Request{CSR: csrFor(t, key, "", tc.names...), Profile: "tls-client", Principal: "apikey:team-a"}
		if tc.limited {
			req.Limits = lim
		}
		iss, err := a.Issue(ctx, req)
		if tc.kind == -1 && err != nil || tc.kind != -1 && core.KindOf(err) != tc.kind {
			t.Errorf("%s: %v (kind %v), want %v", tc.name, err, core.KindOf(err), tc.kind)
			continue
		}
		if err == nil && len(iss.Certificate.URIs)+len(iss.Certificate.EmailAddresses) == 0 {
			t.Errorf("%s: issued without the URI or email SAN", tc.name)
		}
	}
	// Without a prefix list, allow_uri_sans alone still allows any URI.
	pol = testPolicy
	pol.AllowURISANs = true
	if a, err = New(Options{CA: c, Policy: pol}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Issue(ctx, Request{CSR: csrFor(t, key, "", "spiffe://other.org/x"), Profile: "tls-client", Principal: "apikey:x"}); err != nil {
		t.Errorf("allow_uri_sans: %v", err)
	}
	pol.AllowedURIPrefixes = []string{"not a uri"}
	if _, err := New(Options{CA: c, Policy: pol}); err == nil {
		t.Error("a bad allowed_uri_prefixes entry was taken")
	}
}

// TestSANSyntax: URI and email SANs that no policy may allow — found by a
// review: non-ASCII values got a 500 (one after signing, leaving an
// intent), a Kelvin sign read as "k" under a prefix, a SPIFFE ID with
// ..;/ or an upper-case trust domain passed, an email with an escape
// sequence was issued — are refused as the request's fault, before
// anything is signed; a common name that reads as an email address or URI
// is checked like one.
func TestSANSyntax(t *testing.T) {
	c, db := newCA(t)
	pol := testPolicy
	pol.AllowedURIPrefixes = []string{"spiffe://corp.internal", "spiffe://k8s.internal/ns", "https://svc.corp.internal"}
	pol.AllowedEmailDomains = []string{"corp.internal"}
	pol.AllowExtraSANs = true
	a, err := New(Options{CA: c, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()
	issue := func(cn string, extra []string, names ...string) error {
		_, err := a.Issue(ctx, Request{CSR: csrFor(t, key, cn, names...), Profile: "tls-client", Principal: "apikey:x", ExtraSANs: extra})
		return err
	}
	if err := issue("", nil, "spiffe://corp.internal/ns/team-a/sa/web", "ops@corp.internal"); err != nil {
		t.Fatalf("a SPIFFE ID and an email inside the policy: %v", err)
	}
	before := countStatus(t, db)
	for _, extra := range []string{
		"\u00e9@corp.internal", "spiffe://\u212a8s.internal/ns/x", "spiffe://caf\u00e9.internal/x",
		"ops\x1b[31m@corp.internal", "spiffe://corp.internal/ns/team-a/..;/team-b", "spiffe://Corp.Internal/ns/a",
		"spiffe://corp.internal/ns/a/", "spiffe://corp.internal/ns//a", "spiffe://corp.internal/ns/a%20b",
		"spiffe://corp.internal/" + strings.Repeat("a", 2100), strings.Repeat("a", 65) + "@corp.internal",
	} {
		err := issue("", []string{extra}, "spiffe://corp.internal/ns/base")
		if k := core.KindOf(err); k != core.KindRejected && k != core.KindMalformed {
			t.Errorf("extra SAN %q: %v (kind %v), want a refusal of the request", extra, err, k)
		}
	}
	for _, cn := range []string{"ceo@evil.example", "spiffe://other.org/ns/x"} {
		if err := issue(cn, nil, "spiffe://corp.internal/ns/base"); core.KindOf(err) != core.KindRejected {
			t.Errorf("common name %q: %v, want a policy refusal", cn, err)
		}
	}
	if err := issue("Team: Ops", nil, "spiffe://corp.internal/ns/base"); err != nil {
		t.Errorf("a free-text common name: %v", err)
	}
	if got := countStatus(t, db); got != before+1 {
		t.Errorf("%d certificates or intents written by refused requests, want only the free-text CN's one", got-before)
	}
}

// countStatus counts the certificates and intents stored (serials only
// reserved ahead are not).
func countStatus(t *testing.T, db *storage.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM certificates WHERE status <> 'reserved'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
