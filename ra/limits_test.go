package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
)

func TestLimits(t *testing.T) {
	c, _ := newCA(t)
	pol := testPolicy
	pol.AllowExtraSANs = true
	a, err := New(Options{CA: c, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ParseLimits([]string{"team-a.corp.internal", " 10.20.0.0/16", "10.9.9.9"}, []string{"tls-server", "tls-client"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  Request
		kind core.Kind // -1: issued
	}{
		{"the suffix itself", Request{CSR: csrFor(t, key, "", "team-a.corp.internal")}, -1},
		{"below the suffix, and an IP in range", Request{CSR: csrFor(t, key, "", "web.team-a.corp.internal", "10.20.3.4")}, -1},
		{"a single allowed address", Request{CSR: csrFor(t, key, "", "x.team-a.corp.internal", "10.9.9.9")}, -1},
		{"wildcard below the suffix", Request{CSR: csrFor(t, key, "", "*.team-a.corp.internal")}, -1},
		{"CN only, inside", Request{CSR: csrFor(t, key, "api.team-a.corp.internal")}, -1},
		{"another team's name (policy allows it)", Request{CSR: csrFor(t, key, "", "team-b.corp.internal")}, core.KindForbidden},
		{"look-alike suffix", Request{CSR: csrFor(t, key, "", "evilteam-a.corp.internal")}, core.KindForbidden},
		{"one name inside, one outside", Request{CSR: csrFor(t, key, "", "a.team-a.corp.internal", "b.corp.internal")}, core.KindForbidden},
		{"IP outside the ranges (policy allows 10/8)", Request{CSR: csrFor(t, key, "", "a.team-a.corp.internal", "10.30.0.1")}, core.KindForbidden},
		{"extra SAN outside", Request{CSR: csrFor(t, key, "", "a.team-a.corp.internal"), ExtraSANs: []string{"other.corp.internal"}}, core.KindForbidden},
		{"wildcard above the suffix", Request{CSR: csrFor(t, key, "", "*.corp.internal")}, core.KindForbidden},
		{"profile outside the limits", Request{CSR: csrFor(t, key, "", "a.team-a.corp.internal"), Profile: "tls-server-client"}, core.KindForbidden},
		{"policy still applies inside the limits", Request{CSR: csrFor(t, key, "", "a_b.team-a.corp.internal")}, core.KindRejected},
		// A tls-client certificate carries its common name as sent.
		{"tls-client, another team's host as CN", Request{CSR: csrFor(t, key, "b.corp.internal", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, an outside IP as CN", Request{CSR: csrFor(t, key, "10.30.0.1", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		// Free text there is a user name to PostgreSQL, Kafka or a VPN:
		// a key kept to names gets none (Vault's cn_validations).
		{"tls-client, CN a person's name", Request{CSR: csrFor(t, key, "alice", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, CN a database user", Request{CSR: csrFor(t, key, "postgres", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, CN a dotless host", Request{CSR: csrFor(t, key, "localhost", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, CN with two @", Request{CSR: csrFor(t, key, "a@b@team-a.corp.internal", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, free text ending in a name of the key", Request{CSR: csrFor(t, key, "postgres c.team-a.corp.internal", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, a path ending in a name of the key", Request{CSR: csrFor(t, key, "postgres/x.team-a.corp.internal", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindForbidden},
		{"tls-client, CN an email inside", Request{CSR: csrFor(t, key, "ops@team-a.corp.internal", "c.team-a.corp.internal"), Profile: "tls-client"}, core.KindRejected},
		{"tls-client, CN inside", Request{CSR: csrFor(t, key, "svc.team-a.corp.internal", "c.team-a.corp.internal"), Profile: "tls-client"}, -1},
	} {
		tc.req.Principal, tc.req.Limits = "apikey:team-a", lim
		_, err := a.Issue(ctx, tc.req)
		if tc.kind == -1 && err != nil || tc.kind != -1 && core.KindOf(err) != tc.kind {
			t.Errorf("%s: %v (kind %v), want %v", tc.name, err, core.KindOf(err), tc.kind)
		}
	}
	if !lim.Covers([]string{"a.team-a.corp.internal", "10.20.0.9"}) || lim.Covers([]string{"a.team-a.corp.internal", "b.corp.internal"}) ||
		lim.Covers([]string{"ops@team-a.corp.internal"}) || lim.Covers(nil) {
		t.Error("Covers")
	}
	// Front ends never revoke a CA certificate, whatever the credential;
	// a name-limited one revokes only certificates inside its names.
	_, inter := catest.Hierarchy(t, "Limits")
	caRec := &core.Certificate{Serial: "01", Subject: "Limits Intermediate", DER: inter.Certificate().Raw}
	if err := MayRevoke(nil, caRec); core.KindOf(err) != core.KindForbidden || !strings.Contains(err.Error(), "ca cert revoke --ca") {
		t.Errorf("MayRevoke of a CA certificate with no limits: %v", err)
	}
	if err := MayRevoke(lim, &core.Certificate{Serial: "02"}); core.KindOf(err) != core.KindForbidden {
		t.Errorf("MayRevoke of a nameless certificate with name limits: %v", err)
	}
	if err := MayRevoke(lim, &core.Certificate{Serial: "03", Profile: "tls-server", Names: []string{"a.team-a.corp.internal"}}); err != nil {
		t.Errorf("MayRevoke inside the limits: %v", err)
	}
	// A profile-limited one revokes only certificates of its profiles
	// (it revoked api-client credentials and other teams' servers).
	if err := MayRevoke(lim, &core.Certificate{Serial: "04", Profile: "api-client", Names: []string{"a.team-a.corp.internal"}}); core.KindOf(err) != core.KindForbidden {
		t.Errorf("MayRevoke of another profile with profile limits: %v", err)
	}
	profOnly, _ := ParseLimits(nil, []string{"tls-client"})
	if err := MayRevoke(profOnly, &core.Certificate{Serial: "05", Profile: "tls-server", Names: []string{"b.corp.internal"}}); core.KindOf(err) != core.KindForbidden {
		t.Errorf("MayRevoke of a tls-server certificate by a tls-client-only credential: %v", err)
	}
	// No front end revokes the node's own certificates, which it would
	// go on serving.
	own := &core.Certificate{Serial: "06", Profile: "tls-server", Requester: SystemRequester + "https-listener", Names: []string{"localhost"}}
	if err := MayRevoke(nil, own); core.KindOf(err) != core.KindForbidden || !strings.Contains(err.Error(), "ca cert revoke") {
		t.Errorf("MayRevoke of the HTTPS listener's certificate: %v", err)
	}
	for _, bad := range []string{"*.corp.internal", "a b", "user@x.org", "nodots", "10.0.0.0/33", "corp..internal", "-team.corp.internal", "team_a.corp.internal"} {
		if _, err := ParseLimits([]string{bad}, nil); core.KindOf(err) != core.KindMalformed {
			t.Errorf("ParseLimits(%q): %v, want malformed", bad, err)
		}
	}
	if l, err := ParseLimits(nil, []string{""}); l != nil || err != nil {
		t.Errorf("empty limits: %v, %v", l, err)
	}
}

func TestFullAdmin(t *testing.T) {
	names, _ := ParseLimits([]string{"team-a.corp.internal"}, nil)
	profiles, _ := ParseLimits(nil, []string{"tls-server"})
	for _, tc := range []struct {
		l     *Limits
		admin bool
		want  bool
	}{{nil, true, true}, {nil, false, false}, {names, true, false}, {profiles, true, false}} {
		if got := FullAdmin(tc.l, tc.admin); got != tc.want {
			t.Errorf("FullAdmin(%+v, %v) = %v, want %v", tc.l, tc.admin, got, tc.want)
		}
	}
}

// TestConsoleMayUseWhatTheKeyMay: an API key used in the web console is
// the same credential, so profile_access patterns for the key grant the
// profile there too; the console's own form still works.
func TestConsoleMayUseWhatTheKeyMay(t *testing.T) {
	p := testPolicy
	p.ProfileAccess = map[string][]string{"code-signing": {"apikey:builder"}, "tls-client": {"apikey:*"},
		"subordinate-ca": {"console:apikey:root-admin"}}
	for _, c := range []struct {
		principal, profile string
		want               bool
	}{
		{"console:apikey:builder", "code-signing", true},
		{"apikey:builder", "code-signing", true},
		{"console:apikey:other", "code-signing", false},
		{"console:apikey:x", "tls-client", true},
		{"console:apikey:root-admin", "subordinate-ca", true},
		{"apikey:root-admin", "subordinate-ca", false},
		{"console:acme:default/1", "code-signing", false},
	} {
		if got := p.mayUse(c.principal, c.profile); got != c.want {
			t.Errorf("mayUse(%s, %s) = %v, want %v", c.principal, c.profile, got, c.want)
		}
	}
}
