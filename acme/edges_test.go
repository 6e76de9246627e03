package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

func TestJWSChecks(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	if r := c.register(nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	acct := c.kid
	newOrder := e.url("new-order")
	order := map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}

	t.Run("reused nonce", func(t *testing.T) {
		n := c.nonce()
		setNonce := func(h map[string]any) { h["nonce"] = n }
		if r := c.post(acct, nil, setNonce); r.StatusCode != http.StatusOK {
			t.Fatalf("first use: %d %s", r.StatusCode, r.body)
		}
		wantProblem(t, c.post(acct, nil, setNonce), "badNonce", http.StatusBadRequest)
	})
	cases := []struct {
		name   string
		edit   func(h map[string]any)
		typ    string
		status int
	}{
		{"no nonce", func(h map[string]any) { delete(h, "nonce") }, "badNonce", 400},
		{"made-up nonce", func(h map[string]any) { h["nonce"] = "AAAAAAAAAAAAAAAAAAAAAA" }, "badNonce", 400},
		{"wrong url", func(h map[string]any) { h["url"] = e.url("new-account") }, "unauthorized", 403},
		{"no url", func(h map[string]any) { delete(h, "url") }, "malformed", 400},
		{"alg none", func(h map[string]any) { h["alg"] = "none" }, "badSignatureAlgorithm", 400},
		{"alg HS256", func(h map[string]any) { h["alg"] = "HS256" }, "badSignatureAlgorithm", 400},
		{"alg RS256 with an EC key", func(h map[string]any) { h["alg"] = "RS256" }, "badSignatureAlgorithm", 400},
		{"jwk and kid", func(h map[string]any) { h["jwk"] = jwkJSON(c.key.Public()) }, "malformed", 400},
		{"neither jwk nor kid", func(h map[string]any) { delete(h, "kid") }, "malformed", 400},
		{"unknown kid", func(h map[string]any) { h["kid"] = e.url("account/nope") }, "accountDoesNotExist", 400},
		{"jwk where kid is required", func(h map[string]any) {
			delete(h, "kid")
			h["jwk"] = jwkJSON(c.key.Public())
		}, "malformed", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.post(newOrder, order, tc.edit)
			wantProblem(t, r, tc.typ, tc.status)
			if tc.typ == "badSignatureAlgorithm" && len(r.prob.Algorithms) == 0 {
				t.Fatal("badSignatureAlgorithm without the algorithms list")
			}
		})
	}
	t.Run("bad signature", func(t *testing.T) {
		body := c.sign(newOrder, []byte(`{}`), nil)
		var m map[string]string
		json.Unmarshal(body, &m)
		m["payload"] = b64([]byte(`{"identifiers":[]}`))
		body, _ = json.Marshal(m)
		wantProblem(t, c.postBody(newOrder, body, "application/jose+json"), "malformed", 400)
	})
	t.Run("content type", func(t *testing.T) {
		r := c.postBody(newOrder, c.sign(newOrder, []byte(`{}`), nil), "application/json")
		wantProblem(t, r, "malformed", http.StatusUnsupportedMediaType)
	})
	t.Run("body too large", func(t *testing.T) {
		r := c.postBody(newOrder, []byte(`{"protected":"`+strings.Repeat("A", 70<<10)+`"}`), "application/jose+json")
		wantProblem(t, r, "malformed", http.StatusRequestEntityTooLarge)
	})
	t.Run("garbage", func(t *testing.T) {
		for _, b := range []string{"", "{", "[]", `{"protected":"!!","payload":"","signature":"x"}`,
			`{"protected":"e30","payload":"","signature":"x","signatures":[]}`} {
			wantProblem(t, c.postBody(newOrder, []byte(b), "application/jose+json"), "malformed", 400)
		}
	})
	t.Run("GET on a POST resource", func(t *testing.T) {
		resp, err := e.ts.Client().Get(newOrder)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Replay-Nonce") == "" {
			t.Fatalf("GET new-order: %d", resp.StatusCode)
		}
	})
}

func TestNewNonceAndDirectory(t *testing.T) {
	e := newEnv(t, nil)
	for method, want := range map[string]int{http.MethodHead: 200, http.MethodGet: 204} {
		req, _ := http.NewRequest(method, e.url("new-nonce"), nil)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("Replay-Nonce") == "" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s new-nonce: %d %v", method, resp.StatusCode, resp.Header)
		}
	}
	resp, err := e.ts.Client().Get(e.url("directory"))
	if err != nil {
		t.Fatal(err)
	}
	var dir map[string]any
	json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	for _, k := range []string{"newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"} {
		if u, _ := dir[k].(string); !strings.HasPrefix(u, e.base+"/") {
			t.Fatalf("directory %s = %v", k, dir[k])
		}
	}
}

func TestAccounts(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) { o.Meta.TermsOfService = "https://strongroom.example/tos" })
	c := newRawClient(e)
	wantProblem(t, c.post(e.url("new-account"), map[string]any{"onlyReturnExisting": true}, nil), "accountDoesNotExist", 400)
	wantProblem(t, c.post(e.url("new-account"), map[string]any{}, nil), "malformed", 400) // ToS not agreed
	wantProblem(t, c.register(map[string]any{"termsOfServiceAgreed": true, "contact": []string{"tel:+1"}}), "unsupportedContact", 400)
	wantProblem(t, c.register(map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:a@b?x=y"}}), "invalidContact", 400)
	wantProblem(t, c.register(map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:a@[127.0.0.1]"}}), "invalidContact", 400)
	if r := newRawClient(e).register(map[string]any{"termsOfServiceAgreed": true, "contact": []string{"MAILTO:up@example.com"}}); r.StatusCode != 201 ||
		decode[map[string]any](t, r)["contact"].([]any)[0] != "mailto:up@example.com" {
		t.Fatalf("an upper-case scheme: %d %s", r.StatusCode, r.body)
	}
	if r := c.register(map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:a@example.com"}}); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	kid := c.kid
	c.kid = ""
	if r := c.post(e.url("new-account"), map[string]any{"onlyReturnExisting": true}, nil); r.StatusCode != 200 || r.Header.Get("Location") != kid {
		t.Fatalf("onlyReturnExisting: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	c.kid = kid
	other := newRawClient(e)
	other.register(nil)
	wantProblem(t, other.post(kid, nil, nil), "unauthorized", 403)
	r := c.post(kid, map[string]any{"contact": []string{"mailto:b@example.com"}}, nil)
	if got := decode[map[string]any](t, r); r.StatusCode != 200 || got["contact"].([]any)[0] != "mailto:b@example.com" {
		t.Fatalf("update: %d %s", r.StatusCode, r.body)
	}
	wantProblem(t, c.post(kid, map[string]any{"status": "revoked"}, nil), "malformed", 400)
	if r := c.post(kid, map[string]any{"status": "deactivated"}, nil); r.StatusCode != 200 {
		t.Fatalf("deactivate: %d %s", r.StatusCode, r.body)
	}
	wantProblem(t, c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "x.example.com"}}}, nil), "unauthorized", 403)

	// A blocked key (reported compromised) opens no account.
	leaked := newRawClient(e)
	spki, _ := x509.MarshalPKIXPublicKey(leaked.key.Public())
	if _, err := e.db.BlockKey(context.Background(), storage.BlockedKey{Hash: core.KeyHash(spki), BlockedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, leaked.register(nil), "badPublicKey", 400)
}

func TestOrderEdges(t *testing.T) {
	e := newEnv(t, nil)
	alice, mallory := newRawClient(e), newRawClient(e)
	alice.register(nil)
	mallory.register(nil)
	ids := func(vs ...string) map[string]any {
		var out []acme.Identifier
		for _, v := range vs {
			typ := "dns"
			if strings.ContainsAny(v, ":") || (v != "" && v[0] >= '0' && v[0] <= '9') {
				typ = "ip"
			}
			out = append(out, acme.Identifier{Type: typ, Value: v})
		}
		return map[string]any{"identifiers": out}
	}
	r := alice.post(alice.e.url("new-order"), ids("www.example.com", "*.example.com", "192.0.2.1"), nil)
	if r.StatusCode != 201 {
		t.Fatalf("newOrder: %d %s", r.StatusCode, r.body)
	}
	orderURL, o := r.Header.Get("Location"), decode[orderDoc](t, r)
	if o.Status != "pending" || len(o.Authorizations) != 3 || o.Profile != "server" {
		t.Fatalf("order %+v", o)
	}
	types := map[string]string{}
	for _, az := range o.Authorizations {
		a := decode[authzDoc](t, alice.post(az, nil, nil))
		var ts []string
		for _, ch := range a.Challenges {
			ts = append(ts, ch.Type)
		}
		types[az] = strings.Join(ts, ",")
		if a.Wildcard && types[az] != "dns-01" {
			t.Fatalf("wildcard offers %s, want only dns-01", types[az])
		}
	}

	t.Run("another account's order and authorization", func(t *testing.T) {
		wantProblem(t, mallory.post(orderURL, nil, nil), "unauthorized", 403)
		wantProblem(t, mallory.post(o.Authorizations[0], nil, nil), "unauthorized", 403)
		wantProblem(t, mallory.post(o.Finalize, map[string]string{"csr": "x"}, nil), "unauthorized", 403)
	})
	t.Run("finalize before ready", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		wantProblem(t, alice.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "www.example.com"))}, nil),
			"orderNotReady", 403)
	})
	t.Run("name outside policy", func(t *testing.T) {
		r := alice.post(alice.e.url("new-order"), ids("ok.example.com", "evil.test", "bad.example.org"), nil)
		wantProblem(t, r, "rejectedIdentifier", 400)
		if len(r.prob.Subproblems) != 2 || r.prob.Subproblems[0].Identifier.Value != "evil.test" {
			t.Fatalf("subproblems %+v", r.prob.Subproblems)
		}
	})
	t.Run("bad identifiers", func(t *testing.T) {
		for _, bad := range []map[string]any{ids("-x.example.com"), ids("a..example.com"), ids("*.*.example.com"),
			ids("x.example.com."), {"identifiers": []acme.Identifier{{Type: "ip", Value: "999.1.1.1"}}}} {
			wantProblem(t, alice.post(alice.e.url("new-order"), bad, nil), "rejectedIdentifier", 400)
		}
		wantProblem(t, alice.post(alice.e.url("new-order"), ids(), nil), "malformed", 400)
		wantProblem(t, alice.post(alice.e.url("new-order"), map[string]any{"identifiers": ids("a.example.com")["identifiers"],
			"profile": "nope"}, nil), "invalidProfile", 400)
	})
	t.Run("failed challenge invalidates", func(t *testing.T) {
		a := alice.validate(o.Authorizations[0], strings.Split(types[o.Authorizations[0]], ",")[0], false)
		if a.Status != "invalid" || len(a.Challenges) != 1 || a.Challenges[0].Error == nil ||
			a.Challenges[0].Error.Type != "urn:ietf:params:acme:error:incorrectResponse" {
			t.Fatalf("authz after failed challenge: %+v", a)
		}
		if got := decode[orderDoc](t, alice.post(orderURL, nil, nil)); got.Status != "invalid" {
			t.Fatalf("order status %s, want invalid", got.Status)
		}
	})
	t.Run("deactivate authorization", func(t *testing.T) {
		r := alice.post(o.Authorizations[1], map[string]string{"status": "deactivated"}, nil)
		if a := decode[authzDoc](t, r); a.Status != "deactivated" {
			t.Fatalf("deactivate: %d %s", r.StatusCode, r.body)
		}
	})
}

func TestFinalizeEdges(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}, nil)
	o := decode[orderDoc](t, r)
	c.validate(o.Authorizations[0], "http-01", true)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wantProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "a.example.com", "b.example.com"))}, nil), "badCSR", 400)
	wantProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "other.example.com", "a.example.com"))}, nil), "badCSR", 400)
	wantProblem(t, c.post(o.Finalize, map[string]string{"csr": "!!"}, nil), "badCSR", 400)
	wantProblem(t, c.post(o.Finalize, map[string]string{"csr": b64([]byte("not DER"))}, nil), "badCSR", 400)
	r = c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, c.key, "", "a.example.com"))}, nil)
	wantProblem(t, r, "badCSR", 400)
	if !strings.Contains(r.prob.Detail, "account key") {
		t.Fatalf("CSR with the account key: %s", r.body)
	}
	// The order is still ready after a client mistake; an issuer refusal
	// is reported as its problem and invalidates the order.
	e.issuer.fail = errors.Join(core.Errorf(core.KindRejected, "refused"),
		&acme.IdentifierError{Identifier: acme.Identifier{Type: "dns", Value: "a.example.com"}, Detail: "not today"})
	r = c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "a.example.com", "a.example.com"))}, nil)
	wantProblem(t, r, "rejectedIdentifier", 400)
	if len(r.prob.Subproblems) != 1 || r.prob.Detail != "dns a.example.com: not today" {
		t.Fatalf("detail %q, subproblems %+v: want the one identifier named", r.prob.Detail, r.prob.Subproblems)
	}
	// A refusal of the certificate that is not about an identifier (a
	// lint) is about the CSR.
	r = c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "c.example.com"}}}, nil)
	o = decode[orderDoc](t, r)
	c.validate(o.Authorizations[0], "http-01", true)
	e.issuer.fail = core.Errorf(core.KindRejected, "certificate refused by lints: e_something_about_the_key (error)")
	wantProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "c.example.com"))}, nil), "badCSR", 400)
	e.issuer.fail = errors.New("HSM exploded")
	r = c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "b.example.com"}}}, nil)
	o = decode[orderDoc](t, r)
	c.validate(o.Authorizations[0], "http-01", true)
	r = c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "b.example.com"))}, nil)
	wantProblem(t, r, "serverInternal", 500)
	if strings.Contains(string(r.body), "exploded") {
		t.Fatal("internal error detail leaked to the client")
	}
}

// TestFinalizeWithRevokedIssuer: an issuer whose certificate is revoked,
// or no usable issuer at all, is the CA's state, not the client's CSR:
// finalize answers serverInternal 503 with Retry-After (never badCSR,
// which tells a client to change a CSR that was fine) and the order stays
// ready for the same CSR later.
func TestFinalizeWithRevokedIssuer(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, fail := range []error{core.Because(core.ErrIssuerRevoked, "issuer intermediate-2's certificate is revoked"), core.ErrNoIssuer} {
		r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}, nil)
		orderURL, o := r.Header.Get("Location"), decode[orderDoc](t, r)
		c.validate(o.Authorizations[0], "http-01", true)
		e.issuer.fail = fail
		r = c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "a.example.com"))}, nil)
		wantProblem(t, r, "serverInternal", 503)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%v: 503 without Retry-After", fail)
		}
		if got := decode[orderDoc](t, c.post(orderURL, nil, nil)); got.Status != "ready" {
			t.Errorf("%v: the order is %s after the failure, want ready", fail, got.Status)
		}
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) {
		o.Limits = acme.Limits{NewOrdersPerAccountPerHour: 2, NewAccountsPerIPPerHour: 2}
	})
	for i := range 3 {
		r := newRawClient(e).register(nil)
		if i < 2 && r.StatusCode != 201 {
			t.Fatalf("account %d: %d %s", i, r.StatusCode, r.body)
		}
		if i == 2 {
			wantProblem(t, r, "rateLimited", 429)
			if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); s < 1 || s > 3660 { // an hour and a bucket at most
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
		}
	}
	e2 := newEnv(t, func(o *acme.Options) { o.Limits.NewOrdersPerAccountPerHour = 2 })
	c := newRawClient(e2)
	c.register(nil)
	order := map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}
	for i := range 3 {
		r := c.post(e2.url("new-order"), order, nil)
		if i < 2 && r.StatusCode != 201 {
			t.Fatalf("order %d: %d", i, r.StatusCode)
		}
		if i == 2 {
			wantProblem(t, r, "rateLimited", 429)
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("rateLimited without Retry-After")
			}
		}
	}
}

func TestDownloadRevokeARI(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	chain, certKey := c.issue("dl.example.com")
	blk, _ := pem.Decode([]byte(chain))
	leaf, _ := x509.ParseCertificate(blk.Bytes)

	// Alternate chain, announced by Link rel="alternate".
	o := decode[map[string]any](t, c.post(e.url("account/"+c.kid[strings.LastIndex(c.kid, "/")+1:]+"/orders"), nil, nil))
	if len(o["orders"].([]any)) != 1 {
		t.Fatalf("orders list %v", o)
	}
	certURL := e.url("cert/" + core.SerialFromBig(leaf.SerialNumber).String())
	r := c.post(certURL, nil, nil)
	if !strings.Contains(strings.Join(r.Header.Values("Link"), ","), certURL+"/1>;rel=\"alternate\"") {
		t.Fatalf("no alternate link: %v", r.Header.Values("Link"))
	}
	if alt := c.post(certURL+"/1", nil, nil); alt.StatusCode != 200 || !strings.Contains(string(alt.body), "CERTIFICATE") || string(alt.body) == chain {
		t.Fatalf("alternate chain: %d", alt.StatusCode)
	}
	other := newRawClient(e)
	other.register(nil)
	wantProblem(t, other.post(certURL, nil, nil), "unauthorized", 403)

	// ARI before and after revocation.
	certID, _ := apiCertID(leaf)
	ari := func() map[string]map[string]string {
		resp, err := e.ts.Client().Get(e.url("renewal-info/" + certID))
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("renewal-info: %v %v", err, resp)
		}
		defer resp.Body.Close()
		var v map[string]map[string]string
		json.NewDecoder(resp.Body).Decode(&v)
		return v
	}
	w := ari()["suggestedWindow"]
	if w["start"] <= leaf.NotBefore.UTC().Format("2006-01-02T15:04:05Z") || w["end"] >= leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z") {
		t.Fatalf("window %v outside the validity", w)
	}
	resp, _ := e.ts.Client().Get(e.url("renewal-info/AQID.AQID"))
	if resp.StatusCode != 404 {
		t.Fatalf("unknown certID: %d", resp.StatusCode)
	}
	resp, _ = e.ts.Client().Get(e.url("renewal-info/garbage"))
	if resp.StatusCode != 400 {
		t.Fatalf("malformed certID: %d", resp.StatusCode)
	}

	// Another account may not revoke; the certificate key may.
	wantProblem(t, other.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw)}, nil), "unauthorized", 403)
	// A subscriber gives no reason that only the CA can state (cACompromise,
	// privilegeWithdrawn, aACompromise), as Let's Encrypt and the BRs.
	for _, reason := range []int{6, 2, 9, 10} {
		wantProblem(t, c.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw), "reason": reason}, nil), "badRevocationReason", 400)
	}

	// An order replaces (RFC 9773 §5) only a certificate it shares a name
	// with: an unrelated one would use up the certificate's replacement.
	wantProblem(t, c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "zzz.example.com"}},
		"replaces": certID}, nil), "malformed", 400)
	if r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "dl.example.com"}},
		"replaces": certID}, nil); r.StatusCode != 201 {
		t.Fatalf("the renewal's order with replaces: %d %s", r.StatusCode, r.body)
	}
	byKey := &rawClient{e: e, key: certKey}
	if r := byKey.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw), "reason": 4}, nil); r.StatusCode != 200 {
		t.Fatalf("revoke by certificate key: %d %s", r.StatusCode, r.body)
	}
	wantProblem(t, c.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw)}, nil), "alreadyRevoked", 400)
	// keyCompromise may replace the reason, once, and only when the
	// certificate's key signs the request (Boulder's rule).
	wantProblem(t, c.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw), "reason": 1}, nil), "alreadyRevoked", 400)
	if r := byKey.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw), "reason": 1}, nil); r.StatusCode != 200 {
		t.Fatalf("keyCompromise by the certificate key after superseded: %d %s", r.StatusCode, r.body)
	}
	if rec, err := e.issuer.Certificate(context.Background(), core.SerialFromBig(leaf.SerialNumber)); err != nil || rec.RevocationReason != core.ReasonKeyCompromise {
		t.Fatalf("after the keyCompromise revocation: %+v %v", rec, err)
	}
	wantProblem(t, byKey.post(e.url("revoke-cert"), map[string]any{"certificate": b64(leaf.Raw), "reason": 1}, nil), "alreadyRevoked", 400)
	if w2 := ari()["suggestedWindow"]; w2["end"] >= w["start"] {
		t.Fatalf("revoked certificate window %v is not in the past", w2)
	}
	// A third account that proved control of the name may revoke (§7.6).
	chain2, _ := c.issue("dl.example.com")
	blk, _ = pem.Decode([]byte(chain2))
	third := newRawClient(e)
	third.register(nil)
	wantProblem(t, third.post(e.url("revoke-cert"), map[string]any{"certificate": b64(blk.Bytes)}, nil), "unauthorized", 403)
	third.issue("dl.example.com")
	if r := third.post(e.url("revoke-cert"), map[string]any{"certificate": b64(blk.Bytes)}, nil); r.StatusCode != 200 {
		t.Fatalf("revoke with authorizations: %d %s", r.StatusCode, r.body)
	}
}

// failingOrders is a store whose first orders fail to be written.
type failingOrders struct {
	acme.Store
	fails atomic.Int32
}

func (f *failingOrders) CreateACMEOrder(ctx context.Context, o *storage.ACMEOrder) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("database unavailable")
	}
	return f.Store.CreateACMEOrder(ctx, o)
}

// TestRateLimitsCountWhatWasCreated: orders that failed to be written do
// not use the account's hourly budget.
func TestRateLimitsCountWhatWasCreated(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) {
		o.Limits.NewOrdersPerAccountPerHour = 2
		fo := &failingOrders{Store: o.Store}
		fo.fails.Store(3)
		o.Store = fo
	})
	c := newRawClient(e)
	c.register(nil)
	order := map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}
	for i := range 3 {
		if r := c.post(e.url("new-order"), order, nil); r.StatusCode < 500 {
			t.Fatalf("order %d with the store failing: %d %s", i, r.StatusCode, r.body)
		}
	}
	for i := range 2 {
		if r := c.post(e.url("new-order"), order, nil); r.StatusCode != 201 {
			t.Fatalf("order %d after the failures: %d %s", i, r.StatusCode, r.body)
		}
	}
	wantProblem(t, c.post(e.url("new-order"), order, nil), "rateLimited", 429)
}

// TestProtocolNits: answers a review of the wire protocol found wrong.
func TestProtocolNits(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	newOrder := func(ids ...acme.Identifier) *response {
		return c.post(e.url("new-order"), map[string]any{"identifiers": ids}, nil)
	}
	t.Run("other methods on GET resources are 405", func(t *testing.T) {
		for _, p := range []string{"directory", "new-nonce"} {
			for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
				req, _ := http.NewRequest(m, e.url(p), strings.NewReader("{}"))
				resp, err := e.ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
					t.Errorf("%s %s: %d, Allow %q", m, p, resp.StatusCode, resp.Header.Get("Allow"))
				}
			}
		}
	})
	t.Run("email identifier is unsupportedIdentifier", func(t *testing.T) {
		wantProblem(t, newOrder(acme.Identifier{Type: "email", Value: "a@example.com"}), "unsupportedIdentifier", 400)
		// With a refused identifier of a supported type too, the order is refused for both.
		wantProblem(t, newOrder(acme.Identifier{Type: "email", Value: "a@example.com"}, acme.Identifier{Type: "dns", Value: "-x.example.com"}),
			"rejectedIdentifier", 400)
	})
	t.Run("IPv4-mapped IPv6 address is refused", func(t *testing.T) {
		r := newOrder(acme.Identifier{Type: "ip", Value: "::ffff:127.0.0.1"})
		wantProblem(t, r, "rejectedIdentifier", 400)
	})
	t.Run("IPv6 address not in RFC 5952 text is refused, not rewritten", func(t *testing.T) {
		for _, v := range []string{"0:0:0:0:0:0:0:1", "::0001", "2001:DB8::1"} {
			r := newOrder(acme.Identifier{Type: "ip", Value: v})
			wantProblem(t, r, "rejectedIdentifier", 400)
			if !strings.Contains(string(r.body), "canonical form") {
				t.Errorf("%s: %s", v, r.body)
			}
		}
	})
	t.Run("null payload is malformed", func(t *testing.T) {
		n := newRawClient(e)
		wantProblem(t, n.post(e.url("new-account"), []byte("null"), nil), "malformed", 400)
		if r := n.post(e.url("new-account"), map[string]any{"onlyReturnExisting": true}, nil); r.StatusCode != 400 {
			t.Fatalf("an account was created from a null payload: %d %s", r.StatusCode, r.body)
		}
	})
	t.Run("keyChange to the current key", func(t *testing.T) {
		inner := c.sign(e.url("key-change"), mustJSON(map[string]any{"account": c.kid, "oldKey": jwkJSON(c.key.Public())}),
			func(h map[string]any) { delete(h, "kid"); delete(h, "nonce"); h["jwk"] = jwkJSON(c.key.Public()) })
		r := c.post(e.url("key-change"), inner, nil)
		wantProblem(t, r, "malformed", 400)
		if !strings.Contains(r.prob.Detail, "already this account's key") {
			t.Fatalf("keyChange to the current key: %s", r.body)
		}
	})
	t.Run("keyChange whose inner JWS carries a nonce", func(t *testing.T) {
		nk := newRawClient(e)
		inner := nk.sign(e.url("key-change"), mustJSON(map[string]any{"account": c.kid, "oldKey": jwkJSON(c.key.Public())}), nil)
		r := c.post(e.url("key-change"), inner, nil)
		wantProblem(t, r, "malformed", 400)
		if !strings.Contains(r.prob.Detail, "must not carry a nonce") {
			t.Fatalf("inner JWS with a nonce: %s", r.body)
		}
	})
	t.Run("challenge of a deactivated authorization", func(t *testing.T) {
		o := decode[orderDoc](t, newOrder(acme.Identifier{Type: "dns", Value: "gone.example.com"}))
		a := decode[authzDoc](t, c.post(o.Authorizations[0], map[string]string{"status": "deactivated"}, nil))
		if a.Status != "deactivated" {
			t.Fatalf("deactivate: %+v", a)
		}
		wantProblem(t, c.post(a.Challenges[0].URL, map[string]any{}, nil), "malformed", 400)
	})
	t.Run("unknown orders cursor is malformed", func(t *testing.T) {
		wantProblem(t, c.post(c.kid+"/orders?cursor=nonesuch", nil, nil), "malformed", 400)
		other := newRawClient(e)
		other.register(nil)
		r := other.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "o.example.com"}}}, nil)
		wantProblem(t, c.post(c.kid+"/orders?cursor="+path.Base(r.Header.Get("Location")), nil, nil), "malformed", 400)
	})
}

// TestRevokeCAOwnCertificate: an account holding authorizations for the
// CA's host name may not revoke the node's own HTTPS certificate (the node
// would serve it revoked), as the REST API may not; the holder of its key
// still may (a security review revoked it through ACME).
func TestRevokeCAOwnCertificate(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.ParseCertificateRequest(csrFor(t, nodeKey, "", "ca.example.com"))
	own, err := e.issuer.Issue(ctx, csr, "tls-server", "system:https-listener")
	if err != nil {
		t.Fatal(err)
	}
	der := own.Chains[0][0]
	c := newRawClient(e)
	c.register(nil)
	c.issue("ca.example.com") // valid authorizations for the CA's name
	r := c.post(e.url("revoke-cert"), map[string]any{"certificate": b64(der), "reason": 1}, nil)
	wantProblem(t, r, "unauthorized", 403)
	if !strings.Contains(string(r.body), "this CA's own") {
		t.Fatalf("refusal does not say why: %s", r.body)
	}
	if rec, _ := e.issuer.Certificate(ctx, own.Serial); rec.Status != core.StatusValid {
		t.Fatalf("the node's certificate is %s", rec.Status)
	}
	byKey := &rawClient{e: e, key: nodeKey}
	if r := byKey.post(e.url("revoke-cert"), map[string]any{"certificate": b64(der), "reason": 1}, nil); r.StatusCode != 200 {
		t.Fatalf("revoke by the node's own key: %d %s", r.StatusCode, r.body)
	}
}

// TestClientGoneIsNotAFailure: a request whose client went away is 499,
// not a serverInternal 500 that feeds alerts.
func TestClientGoneIsNotAFailure(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", e.url("renewal-info/AQID.AQID"), nil).WithContext(ctx)
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	if w.Code != 499 {
		t.Errorf("%d %s, want 499", w.Code, w.Body)
	}
}
