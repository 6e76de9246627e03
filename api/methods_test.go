package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

// TestPostOnlyResources: GET of /certificates/dry-run or /renew is a 405
// with Allow: POST, not a serial that is not hex; and a dry run answers
// 406 to an Accept without JSON, as issuance does.
func TestPostOnlyResources(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, path := range []string{"/certificates/dry-run", "/certificates/renew"} {
		for _, key := range []string{"", "reader"} {
			resp, b := e.do(t, "GET", path, key, "", nil)
			problemDetail(t, resp, b, 405)
			if resp.Header.Get("Allow") != "POST" {
				t.Errorf("GET %s: Allow %q", path, resp.Header.Get("Allow"))
			}
		}
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := jsonBody(t, map[string]any{"csr": pemCSR(newCSR(t, k, "", "a.corp.internal"))})
	resp, b := e.do(t, "POST", "/certificates/dry-run", "issuer", "application/json", body, "Accept", "text/html")
	problemDetail(t, resp, b, 406)
	resp, b = e.do(t, "POST", "/certificates/dry-run", "issuer", "application/json", body, "Accept", "text/html, application/*;q=0.5")
	if resp.StatusCode != 200 {
		t.Fatalf("Accept allowing JSON: %d %s", resp.StatusCode, b)
	}
}
