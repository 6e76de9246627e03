package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
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

// TestSPIFFEWorkloadCertificate: with `policy.allowed_uri_prefixes`, a key
// limited by `--names` to one SPIFFE namespace gets a tls-client
// certificate for a workload's SPIFFE ID from an openssl CSR, which
// openssl verifies as a client certificate and shows the URI SAN of; an ID
// of another namespace, or of another trust domain, is a 403 or 422
// problem document. The workload's CSR has an empty subject, as SPIFFE
// SVIDs may: a key kept to names may not put free text (CN=web) in the
// common name, which services authorizing by it would take as a user.
func TestSPIFFEWorkloadCertificate(t *testing.T) {
	requireTool(t, "openssl")
	c := StartCA(t, Options{Configure: func(t testing.TB, dir string) {
		appendConfig(t, dir, "policy:\n  allowed_dns_suffixes: [localhost]\n  allowed_uri_prefixes: [spiffe://corp.internal]\n")
	}})
	key := c.NewAPIKey(t, "--name", "team-a", "--scopes", "issue,read",
		"--names", "spiffe://corp.internal/ns/team-a,team-a.localhost", "--profiles", "tls-client")
	dir := t.TempDir()
	subj := "/"
	issue := func(id string) (int, string) {
		t.Helper()
		csr := filepath.Join(dir, "w.csr")
		run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", filepath.Join(dir, "w.key"), "-out", csr, "-subj", subj, "-addext", "subjectAltName=URI:"+id)
		pemCSR, err := os.ReadFile(csr)
		if err != nil {
			t.Fatal(err)
		}
		body := `{"csr":` + jsonString(string(pemCSR)) + `,"profile":"tls-client"}`
		resp, b := apiCall(t, c, "POST", "/certificates", key, "application/json", "application/pem-certificate-chain", bytes.NewReader([]byte(body)))
		return resp.StatusCode, string(b)
	}
	st, chain := issue("spiffe://corp.internal/ns/team-a/sa/web")
	if st != http.StatusCreated {
		t.Fatalf("a SPIFFE ID inside the key's names: %d %s", st, chain)
	}
	leaf := filepath.Join(dir, "leaf.pem")
	writeFile(t, leaf, []byte(chain))
	if out := run(t, nil, "openssl", "verify", "-CAfile", c.Root, "-untrusted", c.Intermediate, "-purpose", "sslclient", leaf); !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	if out := run(t, nil, "openssl", "x509", "-in", leaf, "-noout", "-ext", "subjectAltName"); !strings.Contains(out, "URI:spiffe://corp.internal/ns/team-a/sa/web") {
		t.Fatalf("the certificate's SANs: %s", out)
	}
	for id, want := range map[string]int{
		"spiffe://corp.internal/ns/team-b/sa/web":     http.StatusForbidden,           // the key's limits
		"spiffe://corp.internal/ns/team-ab/sa/web":    http.StatusForbidden,           // not a whole segment
		"spiffe://other.org/ns/team-a/sa/web":         http.StatusUnprocessableEntity, // the policy
		"spiffe://corp.internal/ns/team-a/../team-b/": http.StatusUnprocessableEntity, // dot segments
	} {
		if st, b := issue(id); st != want || !strings.Contains(b, "problem") {
			t.Errorf("%s: %d %s, want %d", id, st, b, want)
		}
	}
	subj = "/CN=web"
	if st, b := issue("spiffe://corp.internal/ns/team-a/sa/web"); st != http.StatusForbidden || !strings.Contains(b, "common name") {
		t.Errorf("CN=web from a key kept to names: %d %s, want 403", st, b)
	}
}
