package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
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
	dsn := freshPostgresSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.addr
	c := StartCA(t, Options{Env: []string{"STRONGROOM_DATABASE_DSN=" + u.String()}, InitArgs: []string{"--database", "postgres"}})
	issueChain(t, c, goCSR(t, "before.localhost"))

	p.cut()
	resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(goCSR(t, "during.localhost")))
	var prob struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	json.Unmarshal(body, &prob)
	if resp.StatusCode != 503 || prob.Status != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(prob.Detail, "database") {
		t.Fatalf("REST issuance without the database: %s Retry-After %q\n%s", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	r, err := c.Client.Get(c.HTTPSURL + "/readyz")
	if err != nil || r.StatusCode != 503 {
		t.Fatalf("readyz without the database: %v %v", r, err)
	}
	// Anyone may ask /readyz: it says what is wrong, not the driver's
	// error with the database's address and user.
	ready, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(ready), "the database is unavailable") || strings.Contains(string(ready), p.addr) || strings.Contains(string(ready), "user=") {
		t.Fatalf("readyz without the database: %s", ready)
	}

	p.restore()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(goCSR(t, "after.localhost")))
		if resp.StatusCode == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuance after the database came back: %s\n%s", resp.Status, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// proxy forwards TCP connections to target until cut.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	l      net.Listener
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: l.Addr().String(), target: target, l: l}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				in.Close()
				continue
			}
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

// cut refuses new connections and drops the open ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
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
	p := startProxy(t, storagetest.RedisAddr())
	if conn, err := net.Dial("tcp", storagetest.RedisAddr()); err != nil {
		storagetest.ServiceMissing(t, "Redis at "+storagetest.RedisAddr(), err)
	} else {
		conn.Close()
	}
	c := StartCA(t, Options{InitArgs: []string{"--redis", p.addr}})
	chain := issueChain(t, c, goCSR(t, "cached.localhost"))
	leaf, issuer := chain[0], chain[1]
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := ocspGet(t, c, req, false, leaf, issuer); r.Status != ocsp.Good {
		t.Fatalf("before: status %d", r.Status)
	}

	p.cut()
	serial := fmt.Sprintf("%x", leaf.SerialNumber)
	resp, body := apiCall(t, c, "POST", "/certificates/"+serial+"/revoke", c.AdminKey(), "application/json", "",
		strings.NewReader(`{"reason": "keyCompromise"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("revoke with Redis down: %s\n%s", resp.Status, body)
	}
	p.restore()
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
