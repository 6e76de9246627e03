package acme_test

import (
	"context"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/storage"
)

// stuck is an order with one http-01 challenge whose key authorization is
// published with the env's fake validator, nothing posted yet.
type stuck struct {
	c                         *rawClient
	order, authz, chall       string // URLs
	orderID, authzID, challID string
}

func newStuck(t *testing.T, e *env, name string) stuck {
	t.Helper()
	c := newRawClient(e)
	c.register(nil)
	r := c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
	o := decode[orderDoc](t, r)
	s := stuck{c: c, order: r.Header.Get("Location"), authz: o.Authorizations[0]}
	for _, ch := range decode[authzDoc](t, c.post(s.authz, nil, nil)).Challenges {
		if ch.Type == "http-01" {
			s.chall = ch.URL
			e.val.Present(context.Background(), "", ch.Token, ch.Token+"."+c.thumbprint())
		}
	}
	s.orderID, s.authzID, s.challID = path.Base(s.order), path.Base(s.authz), path.Base(s.chall)
	return s
}

func (e *env) validations() int {
	e.val.mu.Lock()
	defer e.val.mu.Unlock()
	return len(e.val.calls)
}

// TestRecoverChallengeAfterCrash: a challenge a crashed node left
// processing is validated again by the next sweep and settles its
// authorization; one still within its validation time is left alone.
func TestRecoverChallengeAfterCrash(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) { o.RecoverEvery = -1 })
	ctx := context.Background()
	crashed, live := newStuck(t, e, "a.example.com"), newStuck(t, e, "b.example.com")
	// What a node leaves behind when it dies after marking the challenge
	// processing and before recording a result.
	if ok, err := e.db.StartACMEChallenge(ctx, crashed.challID, time.Now().Add(-2*time.Minute)); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if ok, err := e.db.StartACMEChallenge(ctx, live.challID, time.Now()); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if a := decode[authzDoc](t, crashed.c.post(crashed.authz, nil, nil)); a.Status != "pending" || a.Challenges[0].Status != "processing" {
		t.Fatalf("before recovery: %+v", a)
	}
	n, err := e.srv.Recover(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	if a := crashed.c.waitAuthz(crashed.authz); a.Status != "valid" {
		t.Fatalf("after recovery: %+v", a)
	}
	if n, err := e.srv.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0", n, err)
	}
	if a := decode[authzDoc](t, live.c.post(live.authz, nil, nil)); a.Challenges[0].Status != "processing" {
		t.Fatalf("a challenge within its validation time was taken over: %+v", a)
	}
	if got := e.validations(); got != 1 {
		t.Fatalf("%d validations, want 1", got)
	}
}

// TestRecoverOneNodeValidates: several nodes sweeping at once validate a
// stale challenge once.
func TestRecoverOneNodeValidates(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) { o.RecoverEvery = -1 })
	ctx := context.Background()
	s := newStuck(t, e, "a.example.com")
	if ok, err := e.db.StartACMEChallenge(ctx, s.challID, time.Now().Add(-time.Hour)); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	nodes := []*acme.Server{e.srv}
	for range 3 {
		srv, err := acme.New(acme.Options{Name: "test", BaseURL: e.base, Store: e.db, Nonces: storage.NewMemoryNonces(0, 0, nil),
			Issuer: e.issuer, Validator: e.val, RecoverEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		nodes = append(nodes, srv)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for _, srv := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := srv.Recover(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 1 {
		t.Fatalf("%d nodes took the challenge over, want 1", total)
	}
	if a := s.c.waitAuthz(s.authz); a.Status != "valid" {
		t.Fatalf("after recovery: %+v", a)
	}
	for _, srv := range nodes {
		srv.Close() // waits for every validation
	}
	if got := e.validations(); got != 1 {
		t.Fatalf("%d validations, want 1", got)
	}
}

// TestRecoverAfterShutdown: a node shut down mid-validation releases the
// challenge; the next node to start (default sweep, no test hook) validates
// it and the authorization turns valid. Before, shutdown set it back to
// pending, where a client that had already asked waited for nothing.
func TestRecoverAfterShutdown(t *testing.T) {
	var e1 *env
	e1 = newEnv(t, func(o *acme.Options) {
		o.Validator = slowValidator{inner: lazyValidator{&e1}, release: make(chan struct{})} // never released
		o.ValidationWait = -1
	})
	ctx := context.Background()
	s := newStuck(t, e1, "a.example.com")
	if ch := decode[authzDoc](t, s.c.post(s.chall, map[string]any{}, nil)); ch.Status != "processing" {
		t.Fatalf("challenge answer: %+v", ch)
	}
	e1.srv.Close()
	stale, err := e1.db.StaleACMEChallenges(ctx, "test", time.Now(), 10)
	if err != nil || len(stale) != 1 || stale[0].ID != s.challID || !stale[0].Since.IsZero() {
		t.Fatalf("after shutdown: %+v, %v", stale, err)
	}
	// A node starts on the same database, with a validator that answers.
	newEnvDB(t, e1.db, func(o *acme.Options) { o.Validator = e1.val })
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := e1.db.ACMEAuthz(ctx, "test", s.authzID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status == "valid" && a.Challenges[0].Status == "valid" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("authorization after restart: %+v", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRecoverOrderLeftProcessing: an order whose finalization was cut short
// becomes invalid with a problem that tells the client what to do; one
// finalizing now is left alone.
func TestRecoverOrderLeftProcessing(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) { o.RecoverEvery = -1 })
	ctx := context.Background()
	old, fresh := newStuck(t, e, "a.example.com"), newStuck(t, e, "b.example.com")
	if ok, err := e.db.StartACMEFinalize(ctx, "test", old.orderID, time.Now().Add(-10*time.Minute)); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if ok, err := e.db.StartACMEFinalize(ctx, "test", fresh.orderID, time.Now()); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if n, err := e.srv.Recover(ctx); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	type withError struct {
		Status string
		Error  *problemDoc
	}
	got := decode[withError](t, old.c.post(old.order, nil, nil))
	if got.Status != "invalid" || got.Error == nil || got.Error.Type != "urn:ietf:params:acme:error:serverInternal" ||
		!strings.Contains(got.Error.Detail, "create a new order") {
		t.Fatalf("stale order: %+v %+v", got, got.Error)
	}
	if got := decode[withError](t, fresh.c.post(fresh.order, nil, nil)); got.Status != "processing" {
		t.Fatalf("order finalizing now: %+v", got)
	}
}
