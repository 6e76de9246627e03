package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
)

// TestUnknownQueryParameters: a query parameter the OpenAPI document does
// not give the operation is a 400 problem naming it (a misspelt list
// filter must not list everything); documented ones still work.
func TestUnknownQueryParameters(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, c := range []struct {
		method, path string
		want         int
		detail       string
	}{
		{"GET", "/certificates?expiring_within=30d", 400, `unknown query parameter "expiring_within"`},
		{"GET", "/certificates?status=valid&Status=revoked", 400, `"Status"`},
		{"GET", "/certificates/01?format=pem&download=1", 400, `"download"`},
		{"GET", "/issuers?x=1", 400, "takes no query parameters"},
		{"GET", "/certificates?status=valid&status=revoked", 400, `query parameter "status" given more than once`},
		{"POST", "/certificates/01/revoke?reason=1", 400, `"reason"`},
		{"GET", "/certificates?status=valid&name=a.example&limit=5&expiring_before=2030-01-01T00:00:00Z", 200, ""},
		{"GET", "/certificates?expiring_after=2030-01-01t00:00:00z", 200, ""}, // RFC 3339 §5.6 allows lower case
		{"GET", "/issuers", 200, ""},
		// PostgreSQL refuses such text with an error (TestListBadTextPostgres).
		{"GET", "/certificates?name=a%00", 400, "name must be UTF-8 text without NUL characters"},
		{"GET", "/certificates?issuer=%ff%fe", 400, "issuer must be UTF-8 text without NUL characters"},
	} {
		r, b := e.do(t, c.method, c.path, "admin", "application/json", []byte(`{}`))
		if r.StatusCode != c.want {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, r.StatusCode, b, c.want)
		}
		if c.want >= 400 {
			var p Problem
			if err := json.Unmarshal(b, &p); err != nil || !strings.Contains(p.Detail, c.detail) ||
				!strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("%s %s: %s, want a problem with %q", c.method, c.path, b, c.detail)
			}
		}
	}
	// The documented parameters of POST /certificates pass the check.
	r, b := e.do(t, "POST", "/certificates?profile=tls-server&lifetime=24h", "admin", "application/pkcs10", []byte("garbage"))
	if r.StatusCode != 400 || strings.Contains(string(b), "query parameter") {
		t.Fatalf("documented parameters refused: %d %s", r.StatusCode, b)
	}
}

// A misspelt JSON field is named, with the fields the request takes; so is
// a lifetime that is neither days nor a duration.
func TestBodyMistakesAreNamed(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr := pemCSR(newCSR(t, k, "", "named.corp.internal"))
	for _, c := range []struct {
		body   map[string]any
		detail string
	}{
		{map[string]any{"csr": csr, "profil": "tls-server"}, `unknown field "profil" (this request takes csr, profile,`},
		{map[string]any{"csr": csr, "lifetime": "bad"}, `lifetime "bad" is neither a number of days nor a duration`},
		// Negative durations parse: a review saw "-1h" called "not a duration".
		{map[string]any{"csr": csr, "lifetime": "-1h"}, `lifetime "-1h" is negative; give a positive duration`},
		{map[string]any{"csr": csr, "lifetime": "-1d"}, `lifetime "-1d" is negative; give a positive duration`},
		{map[string]any{"csr": csr, "lifetime": -60}, `lifetime -60 seconds is negative; give a positive duration`},
		// encoding/json would take "Profile" for "profile".
		{map[string]any{"csr": csr, "Profile": "tls-client"}, `unknown field "Profile" (field names are case-sensitive) (this request takes csr, profile,`},
		{map[string]any{"CSR": csr}, `unknown field "CSR" (field names are case-sensitive)`},
	} {
		r, b := e.do(t, "POST", "/certificates", "issuer", "application/json", jsonBody(t, c.body))
		var p Problem
		if r.StatusCode != 400 || json.Unmarshal(b, &p) != nil || !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%v: %d %s, want 400 with %q", c.body, r.StatusCode, b, c.detail)
		}
	}
}
