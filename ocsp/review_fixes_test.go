package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
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

// failingIssuer certifies responders until fail is set, then refuses.
type failingIssuer struct {
	recordingIssuer
	fail *atomic.Bool
}

func (fi failingIssuer) SignCertificate(ctx context.Context, issuerID string, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	if fi.fail.Load() {
		return nil, errors.New("issuer key damaged")
	}
	return fi.recordingIssuer.SignCertificate(ctx, issuerID, tmpl, pub)
}

// TestRenewalFailureBacksOff: a node that holds a responder certificate
// due for renewal, whose renewals fail (the issuer's key damaged), answers
// with the one it holds and does not try again on every request: each try
// rotates the responder key in the HSM (a review saw 1,000 versions in
// 30 s). It tries again after the interval, which doubles.
func TestRenewalFailureBacksOff(t *testing.T) {
	fail := &atomic.Bool{}
	f := newFixture(t, func(o *ocsp.Options) {
		o.Validity, o.RefreshBefore, o.ResponderValidity = 10*time.Minute, time.Minute, 3*time.Hour
		o.CertIssuer = failingIssuer{recordingIssuer{cert: o.Issuers[0].Cert, key: o.Issuers[0].Signer, status: o.Status.(*fakeStatus)}, fail}
	})
	post := func(i int) xocsp.Response {
		_, body := f.post(t, nonceRequest(t, f.good, f.ca.Cert, []byte(fmt.Sprint(i))))
		return *parse(t, body, f.good, f.ca.Cert)
	}
	first := post(0).Certificate
	fail.Store(true)
	f.clock.add(2*time.Hour + time.Minute) // past renewal, before expiry
	calls := func() int { f.keys.mu.Lock(); defer f.keys.mu.Unlock(); return f.keys.calls }
	before := calls()
	for i := range 50 {
		if r := post(i + 1); r.Status != xocsp.Good || !r.Certificate.Equal(first) {
			t.Fatalf("request %d while renewals fail: status %d, not the certificate held", i, r.Status)
		}
	}
	// asked waits (renewals run in the background) until the key source
	// has been asked want times since before, then checks it was no more.
	asked := func(what string, want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); calls()-before < want && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := calls() - before; n != want {
			t.Fatalf("%s: the key source was asked %d times, want %d", what, n, want)
		}
	}
	asked("50 requests while renewals fail", 1)
	f.clock.add(6 * time.Second)
	post(100)
	asked("after 6 s", 2)
	f.clock.add(6 * time.Second) // the second interval is 10 s
	post(101)
	time.Sleep(50 * time.Millisecond)
	asked("6 s after the second failure", 2)
}
