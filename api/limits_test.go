package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
)

// TestKeyLimits: an API key limited to one team's names and profiles
// issues inside them only (REST and dry-run), revokes only certificates
// whose names are all inside them, and shows its limits in the key list;
// bad limits are refused when the key is created.
func TestKeyLimits(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	secret, id, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "team-a", Scopes: []string{ScopeIssue, ScopeRevoke, ScopeRead},
		Names: []string{"team-a.corp.internal", "10.20.0.0/16"}, Profiles: []string{"tls-server"}})
	if err != nil {
		t.Fatal(err)
	}
	e.keys["team-a"] = secret
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issue := func(keyName, profile string, names ...string) (int, CertificateResponse, []byte) {
		t.Helper()
		resp, body := e.do(t, "POST", "/certificates", keyName, "application/json",
			jsonBody(t, map[string]string{"csr": pemCSR(newCSR(t, key, "", names...)), "profile": profile}))
		var cr CertificateResponse
		_ = json.Unmarshal(body, &cr)
		return resp.StatusCode, cr, body
	}
	before := e.count(t, core.StatusValid)
	if st, _, b := issue("team-a", "", "web.team-a.corp.internal", "10.20.1.1"); st != http.StatusCreated {
		t.Fatalf("inside the limits: %d %s", st, b)
	}
	for _, tc := range []struct {
		name    string
		profile string
		names   []string
	}{
		{"another team's name", "", []string{"web.team-b.corp.internal"}},
		{"an address outside the range", "", []string{"web.team-a.corp.internal", "10.30.0.1"}},
		{"a profile outside the limits", "tls-client", []string{"web.team-a.corp.internal"}},
	} {
		st, _, b := issue("team-a", tc.profile, tc.names...)
		if st != http.StatusForbidden || !strings.Contains(string(b), "credential") {
			t.Errorf("%s: %d %s, want 403", tc.name, st, b)
		}
	}
	if got := e.count(t, core.StatusValid); got != before+1 {
		t.Fatalf("%d certificates issued, want 1", got-before)
	}
	// Dry-run says why.
	resp, body := e.do(t, "POST", "/certificates/dry-run", "team-a", "application/json",
		jsonBody(t, map[string]string{"csr": pemCSR(newCSR(t, key, "", "x.team-b.corp.internal"))}))
	var dr DryRunResponse
	if err := json.Unmarshal(body, &dr); err != nil || resp.StatusCode != 200 || dr.Allowed || !strings.Contains(dr.Reason, "outside this credential's names") {
		t.Fatalf("dry-run: %d %s", resp.StatusCode, body)
	}

	// Revocation: only certificates whose names are all inside.
	_, mine, _ := issue("team-a", "", "api.team-a.corp.internal")
	_, theirs, b := issue("issuer", "", "api.team-b.corp.internal")
	if theirs.Serial == "" {
		t.Fatalf("unlimited key: %s", b)
	}
	// Not found, as when reading it: a 403 would say the serial exists.
	if r, b := e.do(t, "POST", "/certificates/"+theirs.Serial+"/revoke", "team-a", "application/json", []byte(`{"reason":"superseded"}`)); r.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking another team's certificate: %d %s", r.StatusCode, b)
	}
	if r, b := e.do(t, "POST", "/certificates/"+mine.Serial+"/revoke", "team-a", "application/json", []byte(`{"reason":"superseded"}`)); r.StatusCode != http.StatusOK {
		t.Fatalf("revoking its own certificate: %d %s", r.StatusCode, b)
	}
	if rec, err := e.ca.Certificate(ctx, core.Serial(theirs.Serial)); err != nil || rec.Status != core.StatusValid {
		t.Fatalf("the other team's certificate: %+v %v", rec, err)
	}
	// Reading: the key sees its team's certificates only; another team's
	// is not found, listed or fetched.
	if r, b := e.do(t, "GET", "/certificates/"+theirs.Serial, "team-a", "", nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("fetching another team's certificate: %d %s", r.StatusCode, b)
	}
	if r, b := e.do(t, "GET", "/certificates/"+mine.Serial, "team-a", "", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("fetching its own certificate: %d %s", r.StatusCode, b)
	}
	var listed ListResponse
	for cursor, pages := "", 0; pages == 0 || cursor != ""; pages++ {
		_, b := e.do(t, "GET", "/certificates?limit=1&cursor="+cursor, "team-a", "", nil)
		var page ListResponse
		if err := json.Unmarshal(b, &page); err != nil || pages > 20 {
			t.Fatalf("listing: %s", b)
		}
		listed.Certificates = append(listed.Certificates, page.Certificates...)
		cursor = page.NextCursor
	}
	if len(listed.Certificates) != 2 { // web.team-a (valid) and api.team-a (revoked)
		t.Fatalf("team-a lists %d certificates, want its 2: %+v", len(listed.Certificates), listed.Certificates)
	}
	for _, c := range listed.Certificates {
		if !strings.HasSuffix(c.Names[0], ".team-a.corp.internal") {
			t.Fatalf("team-a lists %v", c.Names)
		}
	}

	keys, err := ListKeys(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == id && (strings.Join(k.Names, ",") != "team-a.corp.internal,10.20.0.0/16" || strings.Join(k.Profiles, ",") != "tls-server") {
			t.Fatalf("listed limits: %+v", k)
		}
	}
	for _, bad := range [][]string{{"*.corp.internal"}, {"10.0.0.0/40"}, {"not a name"}} {
		if _, _, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "bad", Scopes: []string{ScopeIssue}, Names: bad}); core.KindOf(err) != core.KindMalformed {
			t.Errorf("limits %v: %v, want malformed", bad, err)
		}
	}
	known := []string{"tls-client", "tls-server"}
	_, _, err = CreateKeyWith(ctx, e.db, KeySpec{Name: "typo", Scopes: []string{ScopeIssue}, Profiles: []string{"tls-sever"}, KnownProfiles: known})
	if core.KindOf(err) != core.KindMalformed || !strings.Contains(err.Error(), `unknown profile "tls-sever" (profiles: tls-client, tls-server)`) {
		t.Errorf("a misspelt profile limit: %v", err)
	}
	if _, _, err := CreateKeyWith(ctx, e.db, KeySpec{Name: "ok", Scopes: []string{ScopeIssue}, Profiles: []string{"tls-client"}, KnownProfiles: known}); err != nil {
		t.Errorf("a known profile limit: %v", err)
	}
}
