package ocsp_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
)

// TestStatusReadBeforeLearntRaise: a status read just before the node
// learns that a reason was raised, signed in a later second, must not be
// served from the cache afterwards (found by a code review: thisUpdate was
// the signing time, so such an answer looked newer than the change).
func TestStatusReadBeforeLearntRaise(t *testing.T) {
	cache := &downCache{Cache: storage.NewMemoryOCSPCache(0, time.Minute, nil)}
	f := newFixture(t, func(o *ocsp.Options) { o.Cache = cache })
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, f.good, f.ca.Cert, crypto.SHA256))
	ctx := context.Background()
	f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: f.clock.now(),
		RevocationReason: core.ReasonSuperseded})
	cache.down.Store(true)
	var once sync.Once
	f.status.after = func() {
		once.Do(func() {
			// The reason is raised just after this read, and this node
			// learns it; the signature lands in a later second.
			f.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked, RevokedAt: f.clock.now(),
				RevocationReason: core.ReasonKeyCompromise})
			f.r.Invalidate(ctx, "int", "1001")
			f.clock.add(1500 * time.Millisecond)
		})
	}
	f.get(t, path) // in flight during the change: may say superseded
	for i := range 3 {
		_, body := f.get(t, path)
		if r := parse(t, body, f.good, f.ca.Cert); r.RevocationReason != xocsp.KeyCompromise {
			t.Errorf("request %d after the node learnt of the raise: reason %d, want keyCompromise", i, r.RevocationReason)
		}
	}
}

// TestQueuedDropsRetriedWhenCacheRecovers: after a failed deletion from
// the shared cache, a revocation a little later tries the cache again and,
// when it works, also deletes what was queued (found by a code review:
// every deletion was queued until the sweeper's next tick).
func TestQueuedDropsRetriedWhenCacheRecovers(t *testing.T) {
	cache := &downCache{Cache: storage.NewMemoryOCSPCache(0, time.Minute, nil)}
	f := newFixture(t, func(o *ocsp.Options) { o.Cache = cache })
	ctx := context.Background()
	cache.down.Store(true)
	if err := f.r.Invalidate(ctx, "int", "1001"); err == nil {
		t.Fatal("a deletion from a cache that is down succeeded")
	}
	// Within the hold a deletion is queued without waiting for the cache.
	if err := f.r.Invalidate(ctx, "int", "ab2f3c"); !errors.Is(err, ocsp.ErrDropQueued) {
		t.Fatalf("a deletion just after a failure: %v, want it queued", err)
	}
	cache.down.Store(false)
	f.clock.add(3 * time.Second)
	if err := f.r.Invalidate(ctx, "int", "deadbeef"); err != nil {
		t.Fatalf("a deletion once the cache works again: %v", err)
	}
	if n := cache.deletes.Load(); n < 2 {
		t.Fatalf("%d deletions reached the cache: the queued ones were not retried with the new one", n)
	}
}

// countLog counts log records by message.
type countLog struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (h *countLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *countLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countLog) WithGroup(string) slog.Handler            { return h }
func (h *countLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs[r.Message]++
	h.mu.Unlock()
	return nil
}

// TestSignerLookupFailureNotRepeated: while the database is down, a
// cached answer signed under another node's responder certificate is not
// looked up, nor logged, on every request (found by a code review: 50
// GETs made 50 lookups and 50 warnings).
func TestSignerLookupFailureNotRepeated(t *testing.T) {
	shared := storage.NewMemoryOCSPCache(0, time.Minute, nil)
	a := newFixture(t, func(o *ocsp.Options) { o.Cache = shared })
	h := &countLog{msgs: map[string]int{}}
	b := newFixture(t, func(o *ocsp.Options) {
		o.Issuers = []ocsp.Issuer{{ID: "int", Cert: a.ca.Cert, Signer: a.ca.Key}}
		o.Status, o.Cache = a.status, shared
		o.Log = slog.New(h)
	})
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, a.good, a.ca.Cert, crypto.SHA256))
	a.get(t, path) // cached by A, signed under A's responder certificate
	a.status.mu.Lock()
	a.status.err = errors.New("dial tcp: connection refused")
	calls := a.status.calls
	a.status.mu.Unlock()
	for range 50 {
		b.get(t, path)
	}
	a.status.mu.Lock()
	lookups := a.status.calls - calls
	a.status.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	logged := 0
	for m, n := range h.msgs {
		if strings.Contains(m, "responder certificate") || strings.Contains(m, "certificate status") {
			logged += n
		}
	}
	// Each request still reads the certificate's own status (tryLater),
	// but the signer is looked up once, and the failures logged once.
	if lookups > 50+2 || logged > 2 {
		t.Fatalf("50 requests with the database down: %d status reads, %d log lines (%v)", lookups, logged, h.msgs)
	}
}

// TestKeyFailureLoggedOnce: while the responder key cannot be had (the
// HSM sealed, the key damaged), every request tries again; the failure is
// logged once per interval, not once per request (left by the damaged-key
// work: 50 requests logged 50 errors).
func TestKeyFailureLoggedOnce(t *testing.T) {
	h := &countLog{msgs: map[string]int{}}
	f := newFixture(t, func(o *ocsp.Options) { o.Log = slog.New(h) })
	f.keys.err = errors.New("hsm: sealed")
	for i := range 50 {
		if _, body := f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte{byte(i)})); string(body) != "\x30\x03\x0a\x01\x03" {
			t.Fatalf("without a key: %x, want tryLater", body)
		}
	}
	h.mu.Lock()
	logged := 0
	for m, n := range h.msgs {
		if strings.Contains(m, "signing key") {
			logged += n
		}
	}
	h.mu.Unlock()
	if logged == 0 || logged > 2 {
		t.Fatalf("50 requests without a key: %d log lines (%v)", logged, h.msgs)
	}
	if n := f.r.Unanswered()["key"]; n != 50 {
		t.Fatalf("%d requests counted unanswered for the key, want 50", n)
	}
	// Nor is the key source asked on every request: each ask rotates the
	// responder key in the HSM. It is asked again once the retry interval
	// has passed.
	f.keys.mu.Lock()
	calls := f.keys.calls
	f.keys.err = nil
	f.keys.mu.Unlock()
	if calls > 2 {
		t.Fatalf("50 requests without a key asked the key source %d times", calls)
	}
	f.clock.add(6 * time.Second)
	if _, body := f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte("after"))); parse(t, body, f.good, f.ca.Cert).Status != xocsp.Good {
		t.Fatal("no answer once the key can be had again")
	}
}
