package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestDatabaseOutage cuts a PostgreSQL node off its database (a TCP proxy
// in between stops forwarding and drops every connection): REST issuance
// answers a 503 problem with Retry-After, not 500 (ACME and the console map
// errors through the same storage.Classify), and /readyz says not ready;
// once the database is back, issuance works again.
func TestDatabaseOutage(t *testing.T) {
	p, dsn := storagetest.NewPostgresProxy(t)
	c := StartCA(t, Options{Env: []string{"STRONGROOM_DATABASE_DSN=" + dsn}, InitArgs: []string{"--database", "postgres"}})
	issueChain(t, c, goCSR(t, "before.localhost"))

	p.Set(storagetest.ProxyRefuse)
	expect503(t, c, "POST", "/certificates", goCSR(t, "during.localhost"), "database")
	r, err := c.Client.Get(c.HTTPSURL + "/readyz")
	if err != nil || r.StatusCode != 503 {
		t.Fatalf("readyz without the database: %v %v", r, err)
	}
	// Anyone may ask /readyz: it says what is wrong, not the driver's
	// error with the database's address and user.
	ready, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(ready), "the database is unavailable") || strings.Contains(string(ready), p.Addr) || strings.Contains(string(ready), "user=") {
		t.Fatalf("readyz without the database: %s", ready)
	}

	p.Set(storagetest.ProxyPass)
	issueAgain(t, c, "after.localhost")
}

// TestDatabaseHang: the node's PostgreSQL stops answering without closing
// its connections (SIGSTOP, a path that drops packets; a TCP proxy holds
// every byte). Issuance (a write: database.timeout) and a certificate list
// (a read: limits.request_timeout) answer 503 with Retry-After while the
// client still waits, instead of holding the request until the database
// answers again; afterwards issuance works without a restart.
func TestDatabaseHang(t *testing.T) {
	p, dsn := storagetest.NewPostgresProxy(t)
	c := StartCA(t, Options{Env: []string{"STRONGROOM_DATABASE_DSN=" + dsn}, InitArgs: []string{"--database", "postgres"}})
	path := filepath.Join(c.Dir, "strongroom.yaml")
	cfg := string(readFile(t, path))
	for _, kv := range []string{"    timeout: 10s\n", "    write_timeout: 30s\n", "    request_timeout: 20s\n"} {
		if !strings.Contains(cfg, kv) {
			t.Fatalf("strongroom.yaml has no %q:\n%s", kv, cfg)
		}
	}
	writeFile(t, path, []byte(strings.NewReplacer("    timeout: 10s\n", "    timeout: 2s\n",
		"    write_timeout: 30s\n", "    write_timeout: 8s\n", "    request_timeout: 20s\n", "    request_timeout: 3s\n").Replace(cfg)))
	c.Restart()
	issueChain(t, c, goCSR(t, "before.localhost"))

	p.Set(storagetest.ProxyHang)
	expect503(t, c, "POST", "/certificates", goCSR(t, "during.localhost"), "database")
	expect503(t, c, "GET", "/certificates?status=valid", nil, "database")

	p.Set(storagetest.ProxyPass)
	issueAgain(t, c, "after.localhost")
}

// expect503 makes an API request (a body is a PEM CSR) and wants a 503
// problem with Retry-After whose detail names what is down.
func expect503(t *testing.T, c *CA, method, path string, body []byte, down string) {
	t.Helper()
	ct := ""
	if body != nil {
		ct = "application/pkcs10"
	}
	resp, data := apiCall(t, c, method, path, c.AdminKey(), ct, "", bytes.NewReader(body))
	var prob struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	json.Unmarshal(data, &prob)
	if resp.StatusCode != 503 || prob.Status != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(prob.Detail, down) {
		t.Fatalf("%s %s with the %s down: %s Retry-After %q\n%s", method, path, down, resp.Status, resp.Header.Get("Retry-After"), data)
	}
}

// issueAgain wants REST issuance to succeed within 20 s.
func issueAgain(t *testing.T, c *CA, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(goCSR(t, name)))
		if resp.StatusCode == 201 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuance after the database came back: %s\n%s", resp.Status, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestRedisOutageDuringRevocation: a node's OCSP answers are cached in
// Redis. Redis becomes unreachable, a certificate whose "good" answer is
// cached is revoked (the revocation is recorded; its event and the cache
// drop fail), and Redis comes back holding the stale "good": the node's
// revocation sweeper, reading the database, drops it, so OCSP says revoked
// within seconds instead of at the cached answer's refresh, up to a day
// later; and the CRLs list it after a refresh, not the next scheduled
// build.
func TestRedisOutageDuringRevocation(t *testing.T) {
	p := storagetest.NewRedisProxy(t)
	c := StartCA(t, Options{InitArgs: []string{"--redis", p.Addr}})
	chain := issueChain(t, c, goCSR(t, "cached.localhost"))
	leaf, issuer := chain[0], chain[1]
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := ocspGet(t, c, req, false, leaf, issuer); r.Status != ocsp.Good {
		t.Fatalf("before: status %d", r.Status)
	}

	p.Set(storagetest.ProxyRefuse)
	serial := fmt.Sprintf("%x", leaf.SerialNumber)
	resp, body := apiCall(t, c, "POST", "/certificates/"+serial+"/revoke", c.AdminKey(), "application/json", "",
		strings.NewReader(`{"reason": "keyCompromise"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("revoke with Redis down: %s\n%s", resp.Status, body)
	}
	p.Set(storagetest.ProxyPass)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := ocspGet(t, c, req, false, leaf, issuer)
		if r.Status == ocsp.Revoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OCSP still says %d 20 s after Redis came back", r.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The CRL builder missed the event too; it catches up at a refresh
	// (15 s), not at the next scheduled build (1 h).
	for deadline = time.Now().Add(40 * time.Second); crlEntry(fetchCRL(t, c, "intermediate.crl", issuer), leaf) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the CRL does not list a certificate revoked while Redis was down")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
