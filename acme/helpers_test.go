package acme_test

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

type env struct {
	t      testing.TB
	srv    *acme.Server
	ts     *httptest.Server
	base   string
	db     *storage.DB
	issuer *fakeIssuer
	val    *fakeValidator
	eab    *fakeEAB
	// present publishes a key authorization for http-01; nil: the fake
	// validator's table.
	present func(token, keyAuth string)
}

func newEnv(t testing.TB, mod func(o *acme.Options)) *env {
	t.Helper()
	db, _ := storagetest.SQLite(t)
	return newEnvDB(t, db, mod)
}

func newEnvDB(t testing.TB, db *storage.DB, mod func(o *acme.Options)) *env {
	t.Helper()
	e := &env{t: t, db: db, issuer: newFakeIssuer(t), val: &fakeValidator{published: map[string]string{}},
		eab: &fakeEAB{keys: map[string][]byte{}}}
	e.issuer.blocks = db
	mux := http.NewServeMux()
	e.ts = httptest.NewTLSServer(mux)
	t.Cleanup(e.ts.Close)
	e.base = e.ts.URL + "/acme/test"
	o := acme.Options{Name: "test", BaseURL: e.base, Store: db, Nonces: storage.NewMemoryNonces(0, 0, nil),
		RateLimiter: storage.NewMemoryLimiter(nil), Issuer: e.issuer, Validator: e.val, EAB: e.eab,
		Policy: suffixPolicy{suffix: "example.com"}, DefaultProfile: "server",
		Profiles: map[string]acme.Profile{"server": {Description: "TLS server, 90 days", CAProfile: "tls-server"},
			"short": {Description: "TLS server, 7 days", CAProfile: "tls-short"}},
		Meta: acme.Meta{Website: "https://strongroom.example"}}
	if mod != nil {
		mod(&o)
	}
	srv, err := acme.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e.srv = srv
	mux.Handle("/acme/test/", srv)
	return e
}

func (e *env) url(p string) string { return e.base + "/" + p }

// rawClient builds JWS by hand, so tests can send what a real client
// refuses to: wrong url, reused nonce, alg none, HS256…
type rawClient struct {
	e    *env
	key  *ecdsa.PrivateKey
	kid  string
	next string        // Replay-Nonce of the last response, used once
	poll time.Duration // authorization polling interval; 0: 10 ms
}

func newRawClient(e *env) *rawClient {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &rawClient{e: e, key: k}
}

func (c *rawClient) nonce() string {
	resp, err := c.e.ts.Client().Head(c.e.url("new-nonce"))
	if err != nil {
		c.e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Replay-Nonce")
}

// thumbprint is the RFC 7638 thumbprint of the account key, base64url.
func (c *rawClient) thumbprint() string {
	tp, _ := (&jose.JSONWebKey{Key: c.key.Public()}).Thumbprint(crypto.SHA256)
	return b64(tp)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwkJSON(pub crypto.PublicKey) json.RawMessage {
	b, _ := json.Marshal(jose.JSONWebKey{Key: pub})
	return b
}

// sign makes a flattened JWS. header starts with alg ES256, a fresh nonce,
// the url and kid (or jwk when no kid); edit may change anything.
func (c *rawClient) sign(url string, payload []byte, edit func(h map[string]any)) []byte {
	n := c.next
	if c.next = ""; n == "" {
		n = c.nonce()
	}
	h := map[string]any{"alg": "ES256", "nonce": n, "url": url}
	if c.kid != "" {
		h["kid"] = c.kid
	} else {
		h["jwk"] = jwkJSON(c.key.Public())
	}
	if edit != nil {
		edit(h)
	}
	hb, _ := json.Marshal(h)
	prot, pl := b64(hb), b64(payload)
	var sig []byte
	switch h["alg"] {
	case "ES256":
		d := sha256.Sum256([]byte(prot + "." + pl))
		r, s, _ := ecdsa.Sign(rand.Reader, c.key, d[:])
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case "HS256":
		m := hmac.New(sha256.New, []byte("secret"))
		m.Write([]byte(prot + "." + pl))
		sig = m.Sum(nil)
	case "none":
	default:
		sig = []byte("not a signature")
	}
	body, _ := json.Marshal(map[string]string{"protected": prot, "payload": pl, "signature": b64(sig)})
	return body
}

type problemDoc struct {
	Type        string `json:"type"`
	Detail      string `json:"detail"`
	Status      int    `json:"status"`
	Algorithms  []string
	Subproblems []struct {
		Type       string          `json:"type"`
		Identifier acme.Identifier `json:"identifier"`
	} `json:"subproblems"`
}

type response struct {
	*http.Response
	body []byte
	prob problemDoc
}

func (c *rawClient) postBody(url string, body []byte, contentType string) *response {
	resp, err := c.e.ts.Client().Post(url, contentType, strings.NewReader(string(body)))
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	c.next = resp.Header.Get("Replay-Nonce")
	r := &response{Response: resp}
	r.body, _ = io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		_ = json.Unmarshal(r.body, &r.prob)
	}
	return r
}

func (c *rawClient) post(url string, payload any, edit func(h map[string]any)) *response {
	var pl []byte
	switch p := payload.(type) {
	case nil:
	case []byte:
		pl = p
	default:
		pl, _ = json.Marshal(p)
	}
	return c.postBody(url, c.sign(url, pl, edit), "application/jose+json")
}

// register creates the account and switches the client to kid mode.
func (c *rawClient) register(payload map[string]any) *response {
	if payload == nil {
		payload = map[string]any{"termsOfServiceAgreed": true}
	}
	r := c.post(c.e.url("new-account"), payload, nil)
	if r.StatusCode == http.StatusCreated || r.StatusCode == http.StatusOK {
		c.kid = r.Header.Get("Location")
	}
	return r
}

func wantProblem(t testing.TB, r *response, typ string, status int) {
	t.Helper()
	if r.prob.Type != "urn:ietf:params:acme:error:"+typ || r.StatusCode != status {
		t.Fatalf("got %d %q (%s), want %d %s", r.StatusCode, r.prob.Type, r.body, status, typ)
	}
	if r.Header.Get("Replay-Nonce") == "" {
		t.Fatal("error response without a Replay-Nonce")
	}
}

func decode[T any](t testing.TB, r *response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return v
}

type orderDoc struct {
	Status         string            `json:"status"`
	Identifiers    []acme.Identifier `json:"identifiers"`
	Authorizations []string          `json:"authorizations"`
	Finalize       string            `json:"finalize"`
	Certificate    string            `json:"certificate"`
	Profile        string            `json:"profile"`
}

type authzDoc struct {
	Status     string `json:"status"`
	Wildcard   bool   `json:"wildcard"`
	Challenges []struct {
		Type, URL, Status, Token string
		Error                    *problemDoc
	} `json:"challenges"`
}

// waitAuthz polls an authorization until it leaves pending, for up to 30 s
// (a count of polls ran out on a loaded CI machine, where make test runs
// every package at once).
func (c *rawClient) waitAuthz(url string) authzDoc {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		a := decode[authzDoc](c.e.t, c.post(url, nil, nil))
		if a.Status != "pending" {
			return a
		}
		time.Sleep(cmp.Or(c.poll, 10*time.Millisecond))
	}
	c.e.t.Fatalf("authorization %s stayed pending for 30 s", url)
	return authzDoc{}
}

// validate publishes the key authorization for the challenge of type typ
// and asks the server to validate it, then waits.
func (c *rawClient) validate(authzURL, typ string, publish bool) authzDoc {
	a := decode[authzDoc](c.e.t, c.post(authzURL, nil, nil))
	for _, ch := range a.Challenges {
		if ch.Type != typ {
			continue
		}
		if publish {
			if c.e.present != nil {
				c.e.present(ch.Token, ch.Token+"."+c.thumbprint())
			} else {
				c.e.val.Present(context.Background(), "", ch.Token, ch.Token+"."+c.thumbprint())
			}
		}
		if r := c.post(ch.URL, map[string]any{}, nil); r.StatusCode != http.StatusOK {
			c.e.t.Fatalf("challenge POST: %d %s", r.StatusCode, r.body)
		}
		return c.waitAuthz(authzURL)
	}
	c.e.t.Fatalf("no %s challenge in %+v", typ, a)
	return a
}

func csrFor(t testing.TB, key crypto.Signer, cn string, names ...string) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// issue runs a whole order with the raw client and returns the PEM chain
// and the certificate key.
func (c *rawClient) issue(names ...string) (string, *ecdsa.PrivateKey) {
	t := c.e.t
	var ids []acme.Identifier
	for _, n := range names {
		ids = append(ids, acme.Identifier{Type: "dns", Value: n})
	}
	r := c.post(c.e.url("new-order"), map[string]any{"identifiers": ids}, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("newOrder: %d %s", r.StatusCode, r.body)
	}
	orderURL := r.Header.Get("Location")
	o := decode[orderDoc](t, r)
	for _, az := range o.Authorizations {
		typ := "http-01"
		if a := decode[authzDoc](t, c.post(az, nil, nil)); a.Wildcard {
			typ = "dns-01"
		}
		if a := c.validate(az, typ, true); a.Status != "valid" {
			t.Fatalf("authorization %s: %+v", az, a)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r = c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", names...))}, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("finalize: %d %s", r.StatusCode, r.body)
	}
	o = decode[orderDoc](t, c.post(orderURL, nil, nil))
	if o.Status != "valid" || o.Certificate == "" {
		t.Fatalf("order after finalize: %+v", o)
	}
	r = c.post(o.Certificate, nil, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("download: %d %s", r.StatusCode, r.body)
	}
	return string(r.body), key
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
