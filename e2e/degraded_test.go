package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestCAUserTamperedDegraded: a running node whose CA HSM user's record is
// altered in the database (its MAC no longer verifies) cannot sign. It
// stays ready — every node shares the record, and OCSP and CRLs still
// serve — but /readyz says "degraded", strongroom_ca_signing_available
// drops to 0, issuance answers 503, and the log names the user once. With
// the record put back, all three come back without a restart.
func TestCAUserTamperedDegraded(t *testing.T) {
	c := StartCA(t, Options{})
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mac []byte
	if err := db.QueryRow(`SELECT mac FROM hsm_users WHERE name = 'ca'`).Scan(&mac); err != nil || len(mac) == 0 {
		t.Fatalf("the ca user's MAC: %x %v", mac, err)
	}
	readyz := func() (int, string, string) { t.Helper(); return readyzOf(t, c, c.Client) }
	prom := c.NewAPIKey(t, "--name", "prom", "--scopes", "metrics")
	signing := func() string { return metricValue(t, c, prom, "strongroom_ca_signing_available") }
	issue := func() int {
		t.Helper()
		body := `{"csr":` + jsonString(string(goCSR(t, "degraded.localhost"))) + `}`
		resp, _ := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "", bytes.NewReader([]byte(body)))
		return resp.StatusCode
	}
	if code, st, _ := readyz(); code != 200 || st != "ready" || signing() != "1" || issue() != http.StatusCreated {
		t.Fatalf("at start: readyz %d %q, signing %s", code, st, signing())
	}

	if _, err := db.Exec(`UPDATE hsm_users SET mac = ? WHERE name = 'ca'`, append([]byte{mac[0] ^ 1}, mac[1:]...)); err != nil {
		t.Fatal(err)
	}
	// The node learns it at its user sync (every 5 s).
	waitFor(t, "the signing gauge to drop", func() bool { return signing() == "0" })
	code, st, reason := readyz()
	if code != 200 || st != "degraded" || !strings.Contains(reason, "cannot sign") {
		t.Fatalf("with the CA user altered: readyz %d %q %q", code, st, reason)
	}
	if strings.Contains(reason, `"ca"`) || strings.Contains(reason, "MAC") {
		t.Fatalf("anyone may read /readyz; its reason names the detail: %q", reason)
	}
	if got := issue(); got != http.StatusServiceUnavailable {
		t.Fatalf("issuing with the CA user altered: %d, want 503", got)
	}
	logged := func(msg string) int { return strings.Count(c.Output(), msg) }
	const degradedMsg = "degraded: the CA's HSM user cannot sign"
	waitFor(t, "the degraded state to be logged", func() bool { return logged(degradedMsg) > 0 })
	readyz() // a second look logs nothing more
	time.Sleep(time.Second)
	if n := logged(degradedMsg); n != 1 {
		t.Fatalf("the degraded state logged %d times, want once:\n%s", n, c.Output())
	}

	if _, err := db.Exec(`UPDATE hsm_users SET mac = ? WHERE name = 'ca'`, mac); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the signing gauge to come back", func() bool { return signing() == "1" })
	if code, st, _ := readyz(); code != 200 || st != "ready" {
		t.Fatalf("with the record put back: readyz %d %q", code, st)
	}
	if got := issue(); got != http.StatusCreated {
		t.Fatalf("issuing with the record put back: %d", got)
	}
	waitFor(t, "the recovery to be logged", func() bool { return logged("the CA signs again") == 1 })
}

// metricValue scrapes /metrics with key and returns the value of the
// unlabelled metric name.
func metricValue(t *testing.T, c *CA, key, name string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", c.HTTPSURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no %s in /metrics:\n%s", name, b)
	}
	return m[1]
}

// TestAuditCheckedAtStart: a node checks the HSM audit log's chain when it
// starts: an entry deleted outside the HSM (which a key's own history
// check cannot see) is logged as an error and strongroom_hsm_audit_intact
// reads 0; an intact log reads 1.
func TestAuditCheckedAtStart(t *testing.T) {
	c := StartCA(t, Options{})
	prom := c.NewAPIKey(t, "--name", "prom", "--scopes", "metrics")
	c.waitFor(t, "the first audit check", func() bool { return metricValue(t, c, prom, "strongroom_hsm_audit_intact") == "1" })
	c.Stop()
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM hsm_audit WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	c.Restart()
	c.waitFor(t, "the audit check to find the deletion", func() bool { return metricValue(t, c, prom, "strongroom_hsm_audit_intact") == "0" })
	c.waitFor(t, "the alteration to be logged", func() bool {
		return strings.Contains(c.Output(), "the audit log was altered outside the HSM") && strings.Contains(c.Output(), "first_bad=3")
	})
}

// TestAuditUnauthenticatedCounted: an audit entry without a MAC after the
// log's authentication began (a node of the previous release appends such
// entries during a rolling upgrade; so does anyone who strips a MAC) is
// counted in strongroom_hsm_audit_unauthenticated_entries and logged,
// while the chain still counts as intact.
func TestAuditUnauthenticatedCounted(t *testing.T) {
	c := StartCA(t, Options{})
	prom := c.NewAPIKey(t, "--name", "prom", "--scopes", "metrics")
	c.waitFor(t, "the first audit check", func() bool {
		return metricValue(t, c, prom, "strongroom_hsm_audit_unauthenticated_entries") == "0"
	})
	c.Stop()
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE hsm_audit SET mac = X'' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	c.Restart()
	c.waitFor(t, "the audit check to count the entry", func() bool {
		return metricValue(t, c, prom, "strongroom_hsm_audit_unauthenticated_entries") == "1"
	})
	if v := metricValue(t, c, prom, "strongroom_hsm_audit_intact"); v != "1" {
		t.Errorf("strongroom_hsm_audit_intact = %s with one entry without a MAC, want 1", v)
	}
	waitFor(t, "the warning", func() bool { return strings.Contains(c.Output(), "audit entries without a MAC") })
	if out, err := c.CLI(context.Background(), "hsm", "status"); err != nil || !strings.Contains(out, "1 entries without a MAC") {
		t.Errorf("ca hsm status does not count the entry without a MAC: %v\n%s", err, out)
	}
}

// redisProxy forwards connections to Redis until cut, which closes them
// all and refuses new ones until restored.
type redisProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newRedisProxy(t *testing.T) *redisProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", storagetest.RedisAddr())
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *redisProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestRedisAwayDegraded: a node whose Redis cannot be reached refuses
// issuance (its rate limits live there); /readyz says so as "degraded"
// (found by a review: it said ready throughout), and ready again once
// Redis is back.
func TestRedisAwayDegraded(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: storagetest.RedisAddr()})
	if err := rc.Ping(context.Background()).Err(); err != nil {
		storagetest.ServiceMissing(t, "Redis at "+storagetest.RedisAddr(), err)
	}
	rc.Close()
	proxy := newRedisProxy(t)
	c := StartCA(t, Options{InitArgs: []string{"--redis", proxy.ln.Addr().String(), "--redis-prefix", "degraded-" + strconv.Itoa(os.Getpid()) + ":"}})
	readyz := func() (string, string) { t.Helper(); _, st, reason := readyzOf(t, c, c.Client); return st, reason }
	if st, reason := readyz(); st != "ready" {
		t.Fatalf("at start: %q %q", st, reason)
	}
	proxy.setCut(true)
	waitFor(t, "/readyz to say Redis cannot be reached", func() bool {
		st, reason := readyz()
		return st == "degraded" && strings.Contains(reason, "Redis cannot be reached")
	})
	proxy.setCut(false)
	waitFor(t, "/readyz to say ready again", func() bool { st, _ := readyz(); return st == "ready" })
}
