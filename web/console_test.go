package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/ca/catest"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// hmacKey is a MAC for tests (the console's only fake: a small interface;
// ca serve uses an HMAC key in the HSM).
type hmacKey []byte

func (k hmacKey) HMAC(_ context.Context, data []byte) ([]byte, error) {
	m := hmac.New(sha256.New, k)
	m.Write(data)
	return m.Sum(nil), nil
}

func (k hmacKey) VerifyHMAC(ctx context.Context, data, mac []byte) error {
	want, _ := k.HMAC(ctx, data)
	if !hmac.Equal(want, mac) {
		return errors.New("bad MAC")
	}
	return nil
}

type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }

type env struct {
	t     *testing.T
	srv   *httptest.Server
	db    *storage.DB
	root  *x509.Certificate
	keys  map[string]string // name → secret
	ids   map[string]string // name → key id
	clock *clock
	// engine is the console's router, for requests the TLS client cannot
	// shape (a body limit, a body that fails mid-read).
	engine *gin.Engine
}

func newEnv(t *testing.T, with ...func(*Options, *storage.DB)) *env {
	t.Helper()
	ctx := context.Background()
	root, inter := catest.Hierarchy(t, "Console Test")
	db, _ := storagetest.SQLite(t)
	w := storage.NewCertWriter(db)
	t.Cleanup(func() { w.Close() })
	pipeline, err := ca.New(ca.Options{Store: w, Issuers: []*ca.Issuer{inter},
		URLs: ca.URLs{CAIssuers: []string{"http://127.0.0.1:8080/issuers/{issuer}.crt"}, CRL: []string{"http://127.0.0.1:8080/crl/{issuer}.crl"}}})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ra.New(ra.Options{CA: pipeline, Policy: ra.Policy{AllowedDNSSuffixes: []string{"corp.internal"},
		AllowedIPRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, root: root.Certificate(), keys: map[string]string{}, ids: map[string]string{}, clock: &clock{}}
	key := make([]byte, 32)
	rand.Read(key)
	o := Options{Authority: auth, Store: db, Issuers: pipeline, MAC: hmacKey(key), Profiles: []string{"tls-server", "tls-client"},
		Now: e.clock.now}
	for _, f := range with {
		f(&o, db)
	}
	con, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	con.Register(engine.Group("/ui"))
	// As server.Unmatched does for /ui/ in ca serve.
	engine.HandleMethodNotAllowed = true
	engine.NoRoute(func(c *gin.Context) { con.Unmatched(c, http.StatusNotFound) })
	engine.NoMethod(func(c *gin.Context) { con.Unmatched(c, http.StatusMethodNotAllowed) })
	e.engine = engine
	e.srv = httptest.NewTLSServer(engine)
	t.Cleanup(e.srv.Close)
	for name, scopes := range map[string][]string{"admin": {api.ScopeAdmin}, "reader": {api.ScopeRead}} {
		secret, id, err := api.CreateKey(ctx, db, name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[name], e.ids[name] = secret, id
	}
	return e
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: e.srv.Client().Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{e: e, c: c}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf fetches a page and returns its form token.
func (b *browser) csrfOf(path string) string {
	b.e.t.Helper()
	_, page := b.do("GET", path, nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.e.t.Fatalf("no CSRF token on %s:\n%s", path, page)
	}
	return m[1]
}

func (b *browser) login(name string) {
	b.e.t.Helper()
	resp, page := b.do("POST", "/ui/login", url.Values{"key": {b.e.keys[name]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/certificates" {
		b.e.t.Fatalf("login as %s: %d %s", name, resp.StatusCode, page)
	}
}

func csrPEM(t *testing.T, name string) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: catest.CSR(t, k, "", name).Raw}))
}

// TestConsole: sign in, issue from a pasted CSR (the chain verifies to the
// root), find it in the list, revoke it with a CSRF-checked form; the
// session cookie's flags and the pages' headers; what a read-only key may
// not do; sign-out, a tampered or expired cookie and a revoked key end the
// session.
func TestConsole(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if resp, _ := b.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("signed out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A foreign page cannot post the sign-in form (login CSRF).
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/login", strings.NewReader(url.Values{"key": {e.keys["admin"]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := b.c.Do(req); err != nil || resp.StatusCode != 403 || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("sign-in posted from another origin: %v %v", resp, err)
	} else if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "not from this console") {
		t.Fatalf("the refusal of another origin does not say why:\n%s", body)
	}
	if resp, page := b.do("POST", "/ui/login", url.Values{"key": {"srk_not-a-key"}}); resp.StatusCode != 401 || !strings.Contains(page, "unknown") {
		t.Fatalf("bad key: %d", resp.StatusCode)
	}
	// A key whose scopes give nothing here is told so, not signed in.
	metricsKey, _, err := api.CreateKey(context.Background(), e.db, "prometheus", []string{api.ScopeMetrics})
	if err != nil {
		t.Fatal(err)
	}
	if resp, page := b.do("POST", "/ui/login", url.Values{"key": {metricsKey}}); resp.StatusCode != 403 || resp.Header.Get("Set-Cookie") != "" ||
		!strings.Contains(page, "give nothing in the console") {
		t.Fatalf("a metrics key signing in: %d %s", resp.StatusCode, page)
	}
	resp, _ := b.do("POST", "/ui/login", url.Values{"key": {e.keys["admin"]}})
	sc := resp.Header.Get("Set-Cookie")
	for _, flag := range []string{"__Host-strongroom_console=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/;"} {
		if !strings.Contains(sc, flag) {
			t.Fatalf("session cookie lacks %s: %s", flag, sc)
		}
	}
	resp, page := b.do("GET", "/ui/issue", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") ||
		resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("issue page: %d %v", resp.StatusCode, resp.Header)
	}
	tok := csrfRE.FindStringSubmatch(page)[1]

	// Issue: bad input is a 4xx page, a good CSR gives a chain.
	if resp, page := b.do("POST", "/ui/issue", url.Values{"csrf": {tok}, "csr": {"garbage"}, "profile": {"tls-server"}}); resp.StatusCode != 400 ||
		!strings.Contains(page, `class="error"`) {
		t.Fatalf("garbage CSR: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := b.do("POST", "/ui/issue", url.Values{"csrf": {tok}, "csr": {csrPEM(t, "evil.example.org")}, "profile": {"tls-server"}}); resp.StatusCode != 422 {
		t.Fatalf("name outside policy: %d", resp.StatusCode)
	}
	resp, page = b.do("POST", "/ui/issue", url.Values{"csrf": {tok}, "csr": {csrPEM(t, "web.corp.internal")}, "profile": {"tls-server"}})
	if resp.StatusCode != 201 {
		t.Fatalf("issue: %d %s", resp.StatusCode, page)
	}
	serial := regexp.MustCompile(`id="issued">([0-9a-f]+)<`).FindStringSubmatch(page)[1]
	chainPEM := regexp.MustCompile(`(?s)<pre id="chain">(.*?)</pre>`).FindStringSubmatch(page)[1]
	chainPEM = strings.NewReplacer("&#43;", "+", "&#x2B;", "+").Replace(chainPEM)
	var certs []*x509.Certificate
	for rest := []byte(chainPEM); ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(e.root)
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "web.corp.internal"}); err != nil {
		t.Fatalf("issued chain does not verify: %v", err)
	}

	// The list finds it by name; the detail page offers revocation.
	if _, page := b.do("GET", "/ui/certificates?name=web.corp.internal", nil); !strings.Contains(page, serial) {
		t.Fatalf("list by name lacks %s", serial)
	}
	if _, page := b.do("GET", "/ui/certificates?under=corp.internal", nil); !strings.Contains(page, serial) {
		t.Fatalf("list under corp.internal lacks %s", serial)
	}
	if _, page := b.do("GET", "/ui/certificates?under=other.internal", nil); strings.Contains(page, serial) {
		t.Fatalf("list under other.internal has %s", serial)
	}
	if resp, _ := b.do("GET", "/ui/certificates?under=%2A.corp", nil); resp.StatusCode != 400 {
		t.Fatalf("bad under filter: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/ui/certificates?status=bogus", nil); resp.StatusCode != 400 {
		t.Fatalf("bad status filter: %d", resp.StatusCode)
	}
	detail := "/ui/certificates/" + serial
	tok = b.csrfOf(detail)
	if resp, _ := b.do("POST", detail+"/revoke", url.Values{"reason": {"keyCompromise"}}); resp.StatusCode != 403 {
		t.Fatalf("revoke without a CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", detail+"/revoke", url.Values{"reason": {"keyCompromise"}, "csrf": {"AAAA"}}); resp.StatusCode != 403 {
		t.Fatalf("revoke with a wrong CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", detail+"/revoke", url.Values{"reason": {"keyCompromise"}, "csrf": {tok}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if _, page := b.do("GET", detail, nil); !strings.Contains(page, "revoked (keyCompromise") || strings.Contains(page, `id="revoke"`) {
		t.Fatalf("after revoking, the detail page says:\n%s", page)
	}
	if resp, _ := b.do("GET", "/ui/certificates/zz", nil); resp.StatusCode != 400 {
		t.Fatalf("bad serial: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/ui/certificates/0abc", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown serial: %d", resp.StatusCode)
	}
	if _, page := b.do("GET", "/ui/issuers", nil); !strings.Contains(page, "Console Test") || !strings.Contains(page, `id="default-issuer"`) {
		t.Fatal("issuers page lacks the issuer")
	}

	// A read-only key sees but may not issue or revoke.
	r := e.browser()
	r.login("reader")
	resp, _ = r.do("GET", "/ui/issue", nil)
	_, page = r.do("GET", "/ui/certificates/"+serial, nil)
	if resp.StatusCode != 403 || strings.Contains(page, `id="revoke"`) {
		t.Fatalf("reader: issue page %d, revoke form shown %v", resp.StatusCode, strings.Contains(page, `id="revoke"`))
	}
	if resp, _ := r.do("POST", "/ui/certificates/"+serial+"/revoke", url.Values{"reason": {"superseded"}, "csrf": {r.csrfOf("/ui/certificates")}}); resp.StatusCode != 403 {
		t.Fatalf("reader revokes: %d", resp.StatusCode)
	}

	// Sign-out ends the session on the server: a copy of the cookie
	// kept from before (a stolen one) no longer works. So do a tampered
	// cookie, expiry and a revoked key.
	u, _ := url.Parse(e.srv.URL + "/ui/")
	kept := e.browser()
	kept.c.Jar.SetCookies(u, b.c.Jar.Cookies(u))
	if resp, _ := kept.do("GET", "/ui/certificates", nil); resp.StatusCode != 200 {
		t.Fatalf("a copy of the session cookie: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/ui/logout", url.Values{"csrf": {b.csrfOf("/ui/certificates")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("still signed in after sign-out")
	}
	if resp, _ := kept.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("a copy of the cookie still works after sign-out")
	}
	t2 := e.browser()
	t2.login("admin")
	ck := t2.c.Jar.Cookies(u)[0]
	forged := *ck
	forged.Value = ck.Value[:len(ck.Value)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(ck.Value, "A")]
	t3 := e.browser()
	t3.c.Jar.SetCookies(u, []*http.Cookie{&forged})
	if resp, _ := t3.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("a tampered cookie was accepted")
	}
	e.clock.mu.Lock()
	e.clock.d = 9 * time.Hour
	e.clock.mu.Unlock()
	if resp, _ := t2.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("an expired session was accepted")
	}
	e.clock.mu.Lock()
	e.clock.d = 0
	e.clock.mu.Unlock()
	if resp, _ := t2.do("GET", "/ui/certificates", nil); resp.StatusCode != 200 {
		t.Fatal("session lost")
	}
	if err := api.RevokeKey(context.Background(), e.db, e.ids["admin"]); err != nil {
		t.Fatal(err)
	}
	if resp, _ := t2.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("a revoked key's session still works")
	}
}

// TestConsoleAPIKeys: an admin lists keys (no secrets), creates one whose
// secret is shown once and works, and revokes it; it cannot revoke the
// key it is signed in with; a reader may not manage keys.
func TestConsoleAPIKeys(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("admin")
	resp, page := b.do("GET", "/ui/keys", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, e.ids["reader"]) || strings.Contains(page, e.keys["reader"]) {
		t.Fatalf("keys page: %d", resp.StatusCode)
	}
	tok := csrfRE.FindStringSubmatch(page)[1]
	if resp, _ := b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"deploy"}, "scope": {"fly"}}); resp.StatusCode != 400 {
		t.Fatalf("unknown scope: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"deploy"}}); resp.StatusCode != 400 {
		t.Fatalf("no scope: %d", resp.StatusCode)
	}
	resp, page = b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"deploy"}, "scope": {"issue", "read"}})
	m := regexp.MustCompile(`<pre id="secret">(srk_[A-Za-z0-9_-]+)</pre>`).FindStringSubmatch(page)
	if resp.StatusCode != 201 || m == nil {
		t.Fatalf("create: %d\n%s", resp.StatusCode, page)
	}
	e.keys["deploy"] = m[1]
	d := e.browser()
	d.login("deploy") // the new secret works
	k, err := api.LookupKey(context.Background(), e.db, m[1])
	if err != nil || strings.Join(k.Scopes, ",") != "issue,read" {
		t.Fatalf("stored key: %+v %v", k, err)
	}
	if _, page := b.do("GET", "/ui/keys", nil); strings.Contains(page, m[1]) {
		t.Fatal("the secret is shown again")
	}
	if resp, _ := b.do("POST", "/ui/keys/"+k.ID+"/revoke", url.Values{"csrf": {tok}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := d.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("the revoked key's session goes on")
	}
	if resp, _ := b.do("POST", "/ui/keys/"+e.ids["admin"]+"/revoke", url.Values{"csrf": {tok}}); resp.StatusCode != 409 {
		t.Fatalf("revoking oneself: %d", resp.StatusCode)
	}
	r := e.browser()
	r.login("reader")
	if resp, _ := r.do("GET", "/ui/keys", nil); resp.StatusCode != 403 {
		t.Fatalf("reader on the keys page: %d", resp.StatusCode)
	}

	// A key limited to one team's names issues only those, here too.
	resp, page = b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"team-a"}, "scope": {"issue", "read"},
		"names": {"team-a.corp.internal, 10.20.0.0/16"}, "profiles": {"tls-server"}})
	m = regexp.MustCompile(`<pre id="secret">(srk_[A-Za-z0-9_-]+)</pre>`).FindStringSubmatch(page)
	if resp.StatusCode != 201 || m == nil || !strings.Contains(page, "team-a.corp.internal, 10.20.0.0/16; profiles tls-server") {
		t.Fatalf("create a limited key: %d\n%s", resp.StatusCode, page)
	}
	e.keys["team-a"] = m[1]
	ta := e.browser()
	ta.login("team-a")
	itok := ta.csrfOf("/ui/issue")
	if resp, _ := ta.do("POST", "/ui/issue", url.Values{"csrf": {itok}, "csr": {csrPEM(t, "web.team-b.corp.internal")}, "profile": {"tls-server"}}); resp.StatusCode != 403 {
		t.Fatalf("limited key, another team's name: %d", resp.StatusCode)
	}
	if resp, _ := ta.do("POST", "/ui/issue", url.Values{"csrf": {itok}, "csr": {csrPEM(t, "web.team-a.corp.internal")}, "profile": {"tls-server"}}); resp.StatusCode != 201 {
		t.Fatalf("limited key, its own name: %d", resp.StatusCode)
	}
	// It lists its team's certificates, not another team's.
	resp, page = b.do("POST", "/ui/issue", url.Values{"csrf": {b.csrfOf("/ui/issue")}, "csr": {csrPEM(t, "web.team-b.corp.internal")}, "profile": {"tls-server"}})
	if resp.StatusCode != 201 {
		t.Fatalf("admin issuing for team-b: %d", resp.StatusCode)
	}
	teamB := regexp.MustCompile(`id="issued">([0-9a-f]+)<`).FindStringSubmatch(page)[1]
	if resp, _ := ta.do("GET", "/ui/certificates/"+teamB, nil); resp.StatusCode != 404 {
		t.Fatalf("limited key on another team's certificate: %d", resp.StatusCode)
	}
	if resp, page := ta.do("GET", "/ui/certificates", nil); resp.StatusCode != 200 || !strings.Contains(page, "web.team-a.corp.internal") ||
		strings.Contains(page, "web.team-b.corp.internal") {
		t.Fatalf("limited key's certificate list: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"bad"}, "scope": {"issue"}, "names": {"*.corp.internal"}}); resp.StatusCode != 400 {
		t.Fatalf("a wildcard name limit: %d", resp.StatusCode)
	}
	// An admin limited to one team's names administers those names, not
	// credentials: it could otherwise make itself a key without limits.
	resp, page = b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"team-a-admin"}, "scope": {"admin"},
		"names": {"team-a.corp.internal"}})
	if m = regexp.MustCompile(`<pre id="secret">(srk_[A-Za-z0-9_-]+)</pre>`).FindStringSubmatch(page); resp.StatusCode != 201 || m == nil {
		t.Fatalf("create a limited admin key: %d", resp.StatusCode)
	}
	e.keys["team-a-admin"] = m[1]
	la := e.browser()
	la.login("team-a-admin")
	for _, path := range []string{"/ui/keys", "/ui/audit"} {
		if resp, page := la.do("GET", path, nil); resp.StatusCode != 403 || !strings.Contains(page, "limited to some names") {
			t.Fatalf("limited admin on %s: %d", path, resp.StatusCode)
		}
	}
	ltok := la.csrfOf("/ui/issue")
	if resp, _ := la.do("POST", "/ui/keys", url.Values{"csrf": {ltok}, "name": {"escalated"}, "scope": {"admin"}}); resp.StatusCode != 403 {
		t.Fatalf("limited admin creating an unlimited admin key: %d", resp.StatusCode)
	}

	// A key with a lifetime: its sessions end when it expires.
	resp, page = b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"temp"}, "scope": {"read"}, "expires": {"2h"}})
	m = regexp.MustCompile(`<pre id="secret">(srk_[A-Za-z0-9_-]+)</pre>`).FindStringSubmatch(page)
	if resp.StatusCode != 201 || m == nil {
		t.Fatalf("create a key that expires: %d", resp.StatusCode)
	}
	e.keys["temp"] = m[1]
	tb := e.browser()
	tb.login("temp")
	if resp, _ := tb.do("GET", "/ui/certificates", nil); resp.StatusCode != 200 {
		t.Fatalf("before expiry: %d", resp.StatusCode)
	}
	e.clock.mu.Lock()
	e.clock.d = 3 * time.Hour
	e.clock.mu.Unlock()
	if resp, _ := tb.do("GET", "/ui/certificates", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the expired key's session goes on: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/ui/keys", url.Values{"csrf": {tok}, "name": {"bad"}, "scope": {"read"}, "expires": {"soon"}}); resp.StatusCode != 400 {
		t.Fatalf("a bad lifetime: %d", resp.StatusCode)
	}
}

// failingBody fails like a client whose upload stalls until the server's
// read timeout.
type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, context.Canceled }
func (failingBody) Close() error             { return nil }

// A form over the body limit is 413 and a body that fails mid-read is 400,
// not "unknown API key", "the form is stale" or a 503 with an error logged.
func TestConsoleFormReadErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		body func(w http.ResponseWriter) io.ReadCloser
		want int
	}{
		{"over the limit", func(w http.ResponseWriter) io.ReadCloser {
			return http.MaxBytesReader(w, io.NopCloser(strings.NewReader("key="+strings.Repeat("a", 4096))), 1024)
		}, http.StatusRequestEntityTooLarge},
		{"cut off", func(http.ResponseWriter) io.ReadCloser { return failingBody{} }, http.StatusBadRequest},
	} {
		for _, path := range []string{"/ui/login", "/ui/issue"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", path, nil)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Body = tc.body(rec)
			e.engine.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%s form to %s: %d, want %d\n%s", tc.name, path, rec.Code, tc.want, rec.Body)
			}
		}
	}
	// A body of another type is 415: ParseForm does not read a multipart
	// one, which c.PostForm then read with its errors swallowed.
	for _, ct := range []string{"multipart/form-data; boundary=x", "text/plain"} {
		for _, path := range []string{"/ui/login", "/ui/issue"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", path, strings.NewReader("--x\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nsrk_x\r\n--x--\r\n"))
			req.Header.Set("Content-Type", ct)
			e.engine.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnsupportedMediaType {
				t.Errorf("a %s form to %s: %d, want 415\n%s", ct, path, rec.Code, rec.Body)
			}
		}
	}
}

// TestConsoleSharesIssueCap: what an API key issues in the console counts
// against the same hourly cap (api.issue_per_hour) as what it issues
// through the REST API; over it the console answers 429 with Retry-After
// and issues nothing.
func TestConsoleSharesIssueCap(t *testing.T) {
	var rest *api.API
	e := newEnv(t, func(o *Options, db *storage.DB) {
		var err error
		rest, err = api.New(api.Options{Authority: o.Authority.(api.Authority), Store: db, Issuers: o.Issuers.(api.IssuerSource),
			IssuePerHour: 2, RateLimiter: storage.NewMemoryLimiter(nil)})
		if err != nil {
			t.Fatal(err)
		}
		o.WithinCap = rest.WithinCap
	})
	ctx := context.Background()
	// The admin key issued once through the REST API...
	issued := func() (*ca.Issued, error) { return &ca.Issued{}, nil }
	if _, _, err := rest.WithinCap(ctx, "apikey:"+e.ids["admin"], issued); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login("admin")
	tok := b.csrfOf("/ui/issue")
	// A refused request uses none of it...
	if resp, _ := b.do("POST", "/ui/issue", url.Values{"csrf": {tok}, "csr": {csrPEM(t, "x.elsewhere.org")}, "profile": {"tls-server"}}); resp.StatusCode != 422 {
		t.Fatalf("a name outside the policy: %d", resp.StatusCode)
	}
	// ...so the console issues one more, and then refuses.
	if resp, page := b.do("POST", "/ui/issue", url.Values{"csrf": {tok}, "csr": {csrPEM(t, "one.corp.internal")}, "profile": {"tls-server"}}); resp.StatusCode != 201 {
		t.Fatalf("within the cap: %d %s", resp.StatusCode, page)
	}
	var before int
	e.db.SQL().QueryRow(`SELECT COUNT(*) FROM certificates WHERE status = 'valid'`).Scan(&before)
	resp, page := b.do("POST", "/ui/issue", url.Values{"csrf": {tok}, "csr": {csrPEM(t, "two.corp.internal")}, "profile": {"tls-server"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "at most 2 certificates an hour") {
		t.Fatalf("over the cap: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), page)
	}
	var after int
	e.db.SQL().QueryRow(`SELECT COUNT(*) FROM certificates WHERE status = 'valid'`).Scan(&after)
	if after != before {
		t.Fatalf("the refused console issuance stored %d certificates", after-before)
	}
	// And the REST API sees the console's issuance.
	if _, _, err := rest.WithinCap(ctx, "apikey:"+e.ids["admin"], issued); core.KindOf(err) != core.KindRateLimited {
		t.Fatalf("REST after the console used the cap: %v", err)
	}
}

// TestConsoleShowsRevokedIssuer: the issuers page says an issuer whose own
// certificate is revoked issues nothing, with when and why (it showed it as
// any other).
func TestConsoleShowsRevokedIssuer(t *testing.T) {
	ctx := context.Background()
	var pipeline *ca.CA
	e := newEnv(t, func(o *Options, _ *storage.DB) { pipeline = o.Issuers.(*ca.CA) })
	is := pipeline.Issuers()[0]
	ic, now := is.Certificate(), time.Now().UTC()
	rec := &core.Certificate{Serial: core.SerialFromBig(ic.SerialNumber), IssuerID: "root", Profile: "subordinate-ca",
		Requester: "ceremony", Subject: ic.Subject.CommonName, NotBefore: ic.NotBefore, NotAfter: ic.NotAfter, TBS: ic.RawTBSCertificate, CreatedAt: now}
	for _, err := range []error{e.db.ReserveSerial(ctx, rec), e.db.RecordIntent(ctx, rec, now), e.db.StoreIssued(ctx, rec.Serial, ic.Raw, now)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.login("reader")
	if _, page := b.do("GET", "/ui/issuers", nil); strings.Contains(page, "issues nothing") {
		t.Fatal("a valid issuer is shown as issuing nothing")
	}
	if err := pipeline.RevokeAndBlockKey(ctx, rec.Serial, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.CheckIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, page := b.do("GET", "/ui/issuers", nil); !strings.Contains(page, `id="issuer-`+is.ID()+`-status">revoked: issues nothing`) || !strings.Contains(page, "(keyCompromise)") {
		t.Fatalf("the issuers page after revoking %s:\n%s", is.ID(), page)
	}
}

// A page that does not exist, or a method a page does not take, is a
// console page with the console's headers, not a JSON problem.
func TestConsoleUnmatchedPages(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, tc := range []struct {
		method, path string
		status       int
	}{{"GET", "/ui/%3Cscript%3E", 404}, {"GET", "/ui/logout", 405}} {
		resp, page := b.do(tc.method, tc.path, nil)
		if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Frame-Options") != "DENY" || strings.Contains(page, "<script>") {
			t.Errorf("%s %s: %d %q CSP %q\n%s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"),
				resp.Header.Get("Content-Security-Policy"), page)
		}
	}
}
