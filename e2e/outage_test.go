package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
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
	if r, err := c.Client.Get(c.HTTPSURL + "/readyz"); err != nil || r.StatusCode != 503 {
		t.Fatalf("readyz without the database: %v %v", r, err)
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
