package ocsp_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
)

// downCache is a shared cache that can be unreachable (Redis down); it
// counts the deletes that reached it.
type downCache struct {
	ocsp.Cache
	down    atomic.Bool
	deletes atomic.Int64
}

func (c *downCache) Delete(ctx context.Context, keys ...string) error {
	if c.down.Load() {
		return errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	c.deletes.Add(1)
	return c.Cache.Delete(ctx, keys...)
}

type revocations []core.Revocation

func (rs revocations) EachRevoked(_ context.Context, issuerID string, since time.Time, fn func(core.Revocation) error) error {
	for _, r := range rs {
		if r.ChangedAt.IsZero() {
			r.ChangedAt = r.RevokedAt
		}
		if issuerID == "int" && !r.ChangedAt.Before(since) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestSweepAfterLostRevocation: a revocation whose event was lost while
// the shared cache was unreachable left the cached "good" answer there.
// The sweeper, reading revocations from the database, stops this node
// serving it at once, though the shared cache cannot drop it yet, and
// keeps trying to drop it there until it can.
func TestSweepAfterLostRevocation(t *testing.T) {
	cache := &downCache{Cache: storage.NewMemoryOCSPCache(0, time.Minute, nil)}
	f := newFixture(t, func(o *ocsp.Options) { o.Cache = cache })
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	status := func() int {
		_, body := f.get(t, path)
		return parse(t, body, f.good, f.ca.Cert).Status
	}
	if s := status(); s != xocsp.Good {
		t.Fatalf("before: status %d", s)
	}
	// Revoked in the database; the event never came.
	at := time.Now()
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: at,
		RevocationReason: core.ReasonKeyCompromise})
	if s := status(); s != xocsp.Good {
		t.Fatalf("the cached answer should still say good (the failure this guards against): %d", s)
	}
	src := revocations{{Serial: "1001", RevokedAt: at, Reason: core.ReasonKeyCompromise}}
	cache.down.Store(true)
	if err := f.r.Sweep(context.Background(), src, at.Add(-time.Minute)); err == nil {
		t.Fatal("a sweep that could not reach the cache reported success")
	}
	if _, ok, _ := cache.Get(context.Background(), "int/"+strconv.Itoa(int(crypto.SHA256))+"/1001"); !ok {
		t.Fatal("the shared cache lost the stale answer: the test checks nothing")
	}
	for range 2 {
		if s := status(); s != xocsp.Revoked {
			t.Fatalf("with the cache down, after the sweep: status %d, want revoked", s)
		}
	}

	// The running sweeper retries the shared cache until it takes the
	// deletion.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.r.RunSweeper(ctx, src, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond)
	cache.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for cache.deletes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not drop the stale answer from the cache after it came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := status(); s != xocsp.Revoked {
		t.Fatalf("after the cache came back: status %d", s)
	}
	// Later sweeps still reach the revocation (the overlap) but do not
	// drop its answers again.
	time.Sleep(50 * time.Millisecond)
	n := cache.deletes.Load()
	time.Sleep(100 * time.Millisecond)
	if d := cache.deletes.Load() - n; d != 0 {
		t.Fatalf("%d more deletes for a revocation already swept", d)
	}
}

// TestReasonRaisedWhileCacheDown: a revocation's reason raised to
// keyCompromise while the shared cache cannot delete. The cached answer
// says revoked, with the old reason; the node must answer keyCompromise,
// not serve it (found by the resilience review's fix: only answers not
// saying revoked were refused).
func TestReasonRaisedWhileCacheDown(t *testing.T) {
	cache := &downCache{Cache: storage.NewMemoryOCSPCache(0, time.Minute, nil)}
	f := newFixture(t, func(o *ocsp.Options) { o.Cache = cache })
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	answer := func() *xocsp.Response {
		_, body := f.get(t, path)
		return parse(t, body, f.good, f.ca.Cert)
	}
	ctx := context.Background()
	// Revoked before it was first asked about: the answer, cached, says
	// superseded.
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: f.clock.now(),
		RevocationReason: core.ReasonSuperseded})
	if r := answer(); r.Status != xocsp.Revoked || r.RevocationReason != xocsp.Superseded {
		t.Fatalf("after the revocation: status %d reason %d", r.Status, r.RevocationReason)
	}
	f.clock.add(3 * time.Second)
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: f.clock.now(),
		RevocationReason: core.ReasonKeyCompromise})
	cache.down.Store(true)
	f.r.Invalidate(ctx, "int", "1001") // the shared cache's part fails and is queued
	if _, ok, _ := cache.Get(ctx, "int/"+strconv.Itoa(int(crypto.SHA256))+"/1001"); !ok {
		t.Fatal("the shared cache lost the stale answer: the test checks nothing")
	}
	for range 2 {
		if r := answer(); r.Status != xocsp.Revoked || r.RevocationReason != xocsp.KeyCompromise {
			t.Fatalf("after the reason was raised, with the cache down: status %d reason %d, want keyCompromise", r.Status, r.RevocationReason)
		}
	}
}

// changing is a RevocationSource whose one revocation can change.
type changing struct {
	mu sync.Mutex
	rv core.Revocation
}

func (c *changing) set(rv core.Revocation) { c.mu.Lock(); c.rv = rv; c.mu.Unlock() }

func (c *changing) EachRevoked(_ context.Context, issuerID string, since time.Time, fn func(core.Revocation) error) error {
	c.mu.Lock()
	rv := c.rv
	c.mu.Unlock()
	if issuerID != "int" || rv.ChangedAt.Before(since) {
		return nil
	}
	return fn(rv)
}

// TestSweepSeesRaisedReason: a reason raised to keyCompromise whose event
// was lost keeps its revocation date; the running sweeper, which already
// swept the first revocation, still drops the answer with the old reason.
func TestSweepSeesRaisedReason(t *testing.T) {
	f := newFixture(t, nil)
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	reason := func() int {
		_, body := f.get(t, path)
		return parse(t, body, f.good, f.ca.Cert).RevocationReason
	}
	at := time.Now()
	rv := core.Revocation{Serial: "1001", RevokedAt: at, Reason: core.ReasonSuperseded, ChangedAt: at}
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: at, RevocationReason: rv.Reason})
	src := &changing{rv: rv}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.r.RunSweeper(ctx, src, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	waitReason := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); reason() != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the answer does not give reason %d", want)
			}
		}
	}
	waitReason(xocsp.Superseded)
	time.Sleep(50 * time.Millisecond) // swept, and cached again
	// Raised, in the database only.
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: at,
		RevocationReason: core.ReasonKeyCompromise})
	rv.Reason, rv.ChangedAt = core.ReasonKeyCompromise, time.Now()
	src.set(rv)
	waitReason(xocsp.KeyCompromise)
}
