package acme_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/core"
)

// TestOrdersListPages follows the orders list's Link rel="next" (§7.1.2.1)
// the way a client does: POST-as-GET to the next URL, cursor query
// included, with that exact URL in the JWS url header.
func TestOrdersListPages(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	const n = 101 // one more than a page
	for range n {
		r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "www.example.com"}}}, nil)
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("newOrder: %d %s", r.StatusCode, r.body)
		}
	}
	next := regexp.MustCompile(`<([^>]+)>;rel="next"`)
	seen := map[string]bool{}
	u, pages := c.kid+"/orders", 0
	for u != "" {
		r := c.post(u, nil, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("orders page %d at %s: %d %s", pages, u, r.StatusCode, r.body)
		}
		for _, o := range decode[map[string][]string](t, r)["orders"] {
			if seen[o] {
				t.Fatalf("order %s listed twice", o)
			}
			seen[o] = true
		}
		pages++
		u = ""
		for _, l := range r.Header.Values("Link") {
			if m := next.FindStringSubmatch(l); m != nil {
				u = m[1]
			}
		}
		if pages > 3 {
			t.Fatal("orders list does not end")
		}
	}
	if len(seen) != n || pages != 2 {
		t.Fatalf("listed %d orders on %d pages, want %d on 2", len(seen), pages, n)
	}
	// The url header must still match exactly: the path alone is not the request URL.
	wantProblem(t, c.post(c.kid+"/orders?cursor=x", nil, func(h map[string]any) { h["url"] = c.kid + "/orders" }),
		"unauthorized", http.StatusForbidden)
}

// TestFinalizeClientGone: a client that hangs up while its certificate is
// being issued must not leave the order processing for good.
func TestFinalizeClientGone(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "gone.example.com"}}}, nil)
	orderURL, o := r.Header.Get("Location"), decode[orderDoc](t, r)
	c.validate(o.Authorizations[0], "http-01", true)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := c.sign(o.Finalize, mustJSON(map[string]string{"csr": b64(csrFor(t, key, "", "gone.example.com"))}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.issuer.during = cancel
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, o.Finalize, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/jose+json")
	e.srv.ServeHTTP(httptest.NewRecorder(), req)
	e.issuer.during = nil
	if got := decode[orderDoc](t, c.post(orderURL, nil, nil)); got.Status == "processing" {
		t.Fatalf("order stays processing after the client hung up: %+v", got)
	}
}

// TestOrdersListLeavesOutInvalid: the orders list leaves out invalid
// orders (§7.1.2.1 SHOULD NOT list them): stored invalid (a failed
// finalization), failed (an authorization failed) or expired.
func TestOrdersListLeavesOutInvalid(t *testing.T) {
	clk := &clock{t: time.Now()}
	e := newEnv(t, func(o *acme.Options) { o.Clock = clk; o.OrderLifetime = time.Hour; o.AuthzReuse = -1 })
	c := newRawClient(e)
	c.register(nil)
	order := func(name string) (string, orderDoc) {
		r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("newOrder: %d %s", r.StatusCode, r.body)
		}
		return r.Header.Get("Location"), decode[orderDoc](t, r)
	}
	expired, _ := order("expired.example.com")
	clk.add(2 * time.Hour)
	pending, _ := order("pending.example.com")
	failed, o := order("failed.example.com")
	c.validate(o.Authorizations[0], "http-01", false)
	refused, o := order("refused.example.com")
	c.validate(o.Authorizations[0], "http-01", true)
	e.issuer.fail = core.Errorf(core.KindRejected, "refused")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "refused.example.com"))}, nil)
	e.issuer.fail = nil
	for _, u := range []string{expired, failed, refused} {
		if got := decode[orderDoc](t, c.post(u, nil, nil)); got.Status != "invalid" {
			t.Fatalf("order %s is %s, want invalid", u, got.Status)
		}
	}
	got := decode[map[string][]string](t, c.post(c.kid+"/orders", nil, nil))["orders"]
	if len(got) != 1 || got[0] != pending {
		t.Fatalf("orders list %v, want only %s", got, pending)
	}
}
