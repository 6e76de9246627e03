package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAPIKeyLimitsCLI: `ca apikey create --names … --profiles …` against
// a running CA (the running server and a migrated database see the
// limits at once); the key issues inside its names and profile, gets 403
// problem documents outside them, and `ca apikey list` shows the limits.
func TestAPIKeyLimitsCLI(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := c.NewAPIKey(t, "--name", "team-a", "--scopes", "issue,read",
		"--names", "team-a.localhost,127.0.0.0/8", "--profiles", "tls-server")
	post := func(profile, name string) (int, string) {
		body := `{"csr":` + jsonString(string(goCSR(t, name))) + `,"profile":"` + profile + `"}`
		resp, b := apiCall(t, c, "POST", "/certificates", key, "application/json", "", bytes.NewReader([]byte(body)))
		return resp.StatusCode, resp.Header.Get("Content-Type") + " " + string(b)
	}
	if st, b := post("tls-server", "web.team-a.localhost"); st != http.StatusCreated {
		t.Fatalf("inside the limits: %d %s", st, b)
	}
	for _, tc := range [][2]string{{"tls-server", "web.team-b.localhost"}, {"tls-client", "web.team-a.localhost"}} {
		if st, b := post(tc[0], tc[1]); st != http.StatusForbidden || !strings.Contains(b, "application/problem+json") {
			t.Errorf("%s %s: %d %s, want a 403 problem document", tc[0], tc[1], st, b)
		}
	}
	out, err := c.CLI(ctx, "apikey", "list")
	if err != nil || !strings.Contains(out, "team-a.localhost,127.0.0.0/8") || !strings.Contains(out, "tls-server") {
		t.Fatalf("ca apikey list: %v\n%s", err, out)
	}
	if out, err := c.CLI(ctx, "apikey", "create", "--name", "bad", "--names", "*.localhost"); err == nil {
		t.Fatalf("a wildcard name limit was accepted:\n%s", out)
	}
	// --expires: the key stops working, and the answer says why.
	brief := c.NewAPIKey(t, "--name", "brief", "--scopes", "read", "--expires", "2s")
	if resp, b := apiCall(t, c, "GET", "/certificates", brief, "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a fresh key with --expires: %s %s", resp.Status, b)
	}
	time.Sleep(2500 * time.Millisecond)
	if resp, b := apiCall(t, c, "GET", "/certificates", brief, "", "", nil); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "expired") {
		t.Fatalf("an expired key: %s %s", resp.Status, b)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
