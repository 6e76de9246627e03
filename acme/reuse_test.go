package acme_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
)

// clock is a settable acme.Clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestAuthzReuse: an account that proved control of a name within
// AuthzReuse gets its next order for that name ready at once (no new
// validation), and the order finalizes; another account, the wildcard of
// the name, a proof older than the window, or reuse turned off all start
// pending.
func TestAuthzReuse(t *testing.T) {
	clk := &clock{t: time.Now()}
	e := newEnv(t, func(o *acme.Options) { o.Clock = clk })
	c := newRawClient(e)
	c.register(nil)
	c.issue("a.example.com")
	if got := e.validations(); got != 1 {
		t.Fatalf("%d validations for the first order", got)
	}
	order := func(c *rawClient, name string) (string, orderDoc, authzDoc) {
		t.Helper()
		r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("newOrder %s: %d %s", name, r.StatusCode, r.body)
		}
		o := decode[orderDoc](t, r)
		return r.Header.Get("Location"), o, decode[authzDoc](t, c.post(o.Authorizations[0], nil, nil))
	}
	clk.add(time.Hour)
	orderURL, o, a := order(c, "a.example.com")
	if o.Status != "ready" || a.Status != "valid" || len(a.Challenges) != 1 || a.Challenges[0].Status != "valid" {
		t.Fatalf("reused order %+v, authorization %+v", o, a)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if r := c.post(o.Finalize, map[string]string{"csr": b64(csrFor(t, key, "", "a.example.com"))}, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("finalize of the reused order: %d %s", r.StatusCode, r.body)
	}
	if o := decode[orderDoc](t, c.post(orderURL, nil, nil)); o.Status != "valid" || o.Certificate == "" {
		t.Fatalf("reused order after finalize: %+v", o)
	}
	if got := e.validations(); got != 1 {
		t.Fatalf("%d validations after a reused order", got)
	}

	other := newRawClient(e)
	other.register(nil)
	if _, o, _ := order(other, "a.example.com"); o.Status != "pending" {
		t.Fatalf("another account reuses the authorization: %+v", o)
	}
	if _, o, _ := order(c, "*.a.example.com"); o.Status != "pending" {
		t.Fatalf("the wildcard reuses the plain name's authorization: %+v", o)
	}
	clk.add(24 * time.Hour) // the proof is now 25 hours old
	if _, o, _ := order(c, "a.example.com"); o.Status != "pending" {
		t.Fatalf("a proof older than AuthzReuse is reused: %+v", o)
	}

	off := newEnv(t, func(o *acme.Options) { o.AuthzReuse = -1 })
	c2 := newRawClient(off)
	c2.register(nil)
	c2.issue("b.example.com")
	r := c2.post(off.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "b.example.com"}}}, nil)
	if o := decode[orderDoc](t, r); o.Status != "pending" {
		t.Fatalf("reuse turned off: %+v", o)
	}
}

// TestDeactivateStopsReuse: deactivating an authorization gives the name
// up (RFC 8555 §7.5.2) for every order that reused the same validation:
// the original and all its copies are deactivated, and the next order must
// validate again. Before, only the copy posted to was, and the others kept
// being reused.
func TestDeactivateStopsReuse(t *testing.T) {
	e := newEnv(t, nil)
	c := newRawClient(e)
	c.register(nil)
	order := func(name string) orderDoc {
		t.Helper()
		r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("newOrder: %d %s", r.StatusCode, r.body)
		}
		return decode[orderDoc](t, c.post(r.Header.Get("Location"), nil, nil))
	}
	first := order("a.example.com")
	if a := c.validate(first.Authorizations[0], "http-01", true); a.Status != "valid" {
		t.Fatalf("authorization %+v", a)
	}
	other := order("b.example.com") // validated separately: not given up
	c.validate(other.Authorizations[0], "http-01", true)
	second, third := order("a.example.com"), order("a.example.com")
	if second.Status != "ready" || third.Status != "ready" {
		t.Fatalf("reused orders %s, %s; want ready", second.Status, third.Status)
	}
	r := c.post(second.Authorizations[0], map[string]string{"status": "deactivated"}, nil)
	if a := decode[authzDoc](t, r); a.Status != "deactivated" {
		t.Fatalf("deactivate: %d %s", r.StatusCode, r.body)
	}
	for _, o := range []orderDoc{first, third} {
		if a := decode[authzDoc](t, c.post(o.Authorizations[0], nil, nil)); a.Status != "deactivated" {
			t.Fatalf("an authorization sharing the validation is %s", a.Status)
		}
	}
	if o := order("a.example.com"); o.Status != "pending" {
		t.Fatalf("a new order after deactivation is %s, want pending", o.Status)
	}
	if o := order("b.example.com"); o.Status != "ready" {
		t.Fatalf("another name's order is %s, want ready", o.Status)
	}
}
