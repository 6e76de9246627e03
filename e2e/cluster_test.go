package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestTwoNodes runs two `ca serve` processes that share PostgreSQL (the HSM
// keystore, audit log and certificates) and Redis (nonces, OCSP caches,
// revocation events): a certificate issued on node A is answered by node B's
// OCSP responder, and revoking it on A makes B answer revoked at once, though
// B had cached the good answer.
func TestTwoNodes(t *testing.T) {
	dsn := storagetest.PostgresSchema(t)
	rc := redis.NewClient(&redis.Options{Addr: storagetest.RedisAddr()})
	if err := rc.Ping(context.Background()).Err(); err != nil {
		storagetest.ServiceMissing(t, "Redis at "+storagetest.RedisAddr(), err)
	}
	rc.Close()
	env := []string{"STRONGROOM_DATABASE_DSN=" + dsn}
	a := StartCA(t, Options{Env: env, InitArgs: []string{"--database", "postgres", "--redis", storagetest.RedisAddr()}})
	b := secondNode(t, a, env)

	leafA := issueChain(t, a, goCSR(t, "node-a.example.com"))
	leafB := issueChain(t, b, goCSR(t, "node-b.example.com"))
	issuer := leafA[1]
	req, err := ocsp.CreateRequest(leafA[0], issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := ocspGet(t, b, req, false, leafA[0], issuer); r.Status != ocsp.Good {
		t.Fatalf("node B on A's certificate: status %d, want good", r.Status)
	}
	if n := certCount(t, a); n < 2 {
		t.Fatalf("node A lists %d certificates, want both nodes' (%s issued on B)", n, leafB[0].SerialNumber.Text(16))
	}
	serial := leafA[0].SerialNumber.Text(16)
	resp, body := apiCall(t, a, "POST", "/certificates/"+serial+"/revoke", a.AdminKey(), "application/json", "",
		strings.NewReader(`{"reason":"keyCompromise"}`))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke on A: %s\n%s", resp.Status, body)
	}
	// The event crosses Redis asynchronously; B must stop serving its cached
	// good answer well within a second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := ocspGet(t, b, req, false, leafA[0], issuer)
		if r.Status == ocsp.Revoked && r.RevocationReason == ocsp.KeyCompromise {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B still answers status %d for a certificate revoked on A", r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The node that revokes answers revoked at once, though it had cached
	// the good answer: its own drop must not wait for the event to come
	// back from Redis (it did, and a soak saw "good" after 1 in 7
	// revocations). Several rounds, since the race was short.
	for i := range 20 {
		leaf := issueChain(t, a, goCSR(t, fmt.Sprintf("race-%d.example.com", i)))
		req, _ := ocsp.CreateRequest(leaf[0], issuer, nil)
		if r := ocspGet(t, a, req, false, leaf[0], issuer); r.Status != ocsp.Good {
			t.Fatalf("round %d: fresh certificate: status %d", i, r.Status)
		}
		resp, body := apiCall(t, a, "POST", "/certificates/"+leaf[0].SerialNumber.Text(16)+"/revoke", a.AdminKey(), "application/json", "",
			strings.NewReader(`{"reason":"superseded"}`))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("round %d: revoke: %s\n%s", i, resp.Status, body)
		}
		if r := ocspGet(t, a, req, false, leaf[0], issuer); r.Status != ocsp.Revoked {
			t.Fatalf("round %d: node A answers status %d right after revoking on A", i, r.Status)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := b.CLI(ctx, "hsm", "audit", "verify"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit chain shared by two nodes: %v\n%s", err, out)
	}

	// Rotation on A; B gets A's configuration but not the new PEM file:
	// it finds the certificate in the database by the key the HSM holds.
	if out, err := a.CLI(ctx, "issuer", "add", "intermediate-2", "--default"); err != nil {
		t.Fatalf("ca issuer add on A: %v\n%s", err, out)
	}
	cfg := string(readFile(t, filepath.Join(a.Dir, "strongroom.yaml")))
	cfg = strings.NewReplacer(strings.TrimPrefix(a.HTTPSURL, "https://localhost"), strings.TrimPrefix(b.HTTPSURL, "https://localhost"),
		strings.TrimPrefix(a.HTTPURL, "http://localhost"), strings.TrimPrefix(b.HTTPURL, "http://localhost")).Replace(cfg)
	writeFile(t, filepath.Join(b.Dir, "strongroom.yaml"), []byte(cfg))
	b.Restart()
	inter2 := parsePEMCerts(t, readFile(t, filepath.Join(a.Dir, "intermediate-2.pem")))[0]
	if got := issueChain(t, b, goCSR(t, "rotated.example.com")); !bytes.Equal(got[0].RawIssuer, inter2.RawSubject) {
		t.Fatalf("node B issued from %s after the rotation, want %s", got[0].Issuer, inter2.Subject)
	}
	if !bytes.Equal(readFile(t, filepath.Join(b.Dir, "intermediate-2.pem")), readFile(t, filepath.Join(a.Dir, "intermediate-2.pem"))) {
		t.Fatal("node B did not write intermediate-2.pem from the database")
	}
}

// secondNode copies what a node needs from a's data directory (config,
// certificates, unseal key, CA PIN, admin key) to a new directory with its own
// ports, and serves it.
func secondNode(t *testing.T, a *CA, env []string) *CA {
	t.Helper()
	dir := t.TempDir()
	// What the README's "Adding a node" copies: the configuration (with
	// this node's addresses), the root certificate and the unseal and PIN
	// files. The intermediate's certificate comes from the database, and
	// the admin key is node A's (API keys live in the database).
	for _, f := range []string{"root.pem", "unseal.key", "ca.pin", "apps.pin"} {
		data := readFile(t, filepath.Join(a.Dir, f))
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	httpsPort, httpPort := challengetest.FreePort(t), challengetest.FreePort(t)
	cfg := string(readFile(t, filepath.Join(a.Dir, "strongroom.yaml")))
	cfg = strings.NewReplacer(strings.TrimPrefix(a.HTTPSURL, "https://localhost"), fmt.Sprintf(":%d", httpsPort),
		strings.TrimPrefix(a.HTTPURL, "http://localhost"), fmt.Sprintf(":%d", httpPort)).Replace(cfg)
	writeFile(t, filepath.Join(dir, "strongroom.yaml"), []byte(cfg))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, a.Root))
	b := &CA{t: t, Dir: dir, env: env,
		HTTPSURL: fmt.Sprintf("https://localhost:%d", httpsPort), HTTPURL: fmt.Sprintf("http://localhost:%d", httpPort),
		Root: filepath.Join(dir, "root.pem"), Intermediate: filepath.Join(dir, "intermediate.pem"), AdminKeyFile: a.AdminKeyFile,
		Client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	t.Cleanup(b.Stop)
	b.start()
	b.WaitReady()
	if !bytes.Equal(readFile(t, b.Intermediate), readFile(t, a.Intermediate)) {
		t.Fatal("node B did not write intermediate.pem from the database")
	}
	if out := b.Output(); !strings.Contains(out, "Admin API key:    none in this data directory") {
		t.Fatalf("node B's welcome names an admin key file it does not have:\n%s", out)
	}
	return b
}
