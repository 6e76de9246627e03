package ocsp_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// revokedIn lists the revocations a fakeStatus holds, as the database does
// for the sweep.
type revokedIn struct{ *fakeStatus }

func (s revokedIn) EachRevoked(_ context.Context, issuerID string, since time.Time, fn func(core.Revocation) error) error {
	s.mu.Lock()
	var rvs []core.Revocation
	for _, c := range s.certs {
		if c.IssuerID == issuerID && c.Status == core.StatusRevoked && !c.RevokedAt.Before(since) {
			rvs = append(rvs, core.Revocation{Serial: c.Serial, RevokedAt: c.RevokedAt, Reason: c.RevocationReason, ChangedAt: c.RevokedAt})
		}
	}
	s.mu.Unlock()
	for _, rv := range rvs {
		if err := fn(rv); err != nil {
			return err
		}
	}
	return nil
}

// redisVia returns an OCSP cache and an event bus on a client of addr
// configured as ca serve configures its own (cmd/ca/shared.go), under a
// prefix of their own, emptied at the end through the test Redis itself.
func redisVia(t *testing.T, addr string) (*storage.RedisOCSPCache, *storage.RedisEvents) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	prefix := fmt.Sprintf("test:ocsp:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		rc.Close()
		direct := redis.NewClient(&redis.Options{Addr: storagetest.RedisAddr()})
		defer direct.Close()
		ctx := context.Background()
		for it := direct.Scan(ctx, 0, prefix+"*", 100).Iterator(); it.Next(ctx); {
			direct.Del(ctx, it.Val())
		}
	})
	return storage.NewRedisOCSPCache(rc, prefix+"ocsp:", 0), storage.NewRedisEvents(rc, prefix+"event:", nil)
}

// TestRevocationWhileRedisHangs: two nodes share Redis (through a proxy
// that can hang like a redis-server stopped with SIGSTOP) and the
// database. A certificate is answered good by both; Redis hangs; node A
// revokes it. The revocation returns while Redis still hangs; node A
// answers revoked at once, node B once its database sweep has run, and
// neither answers good again, during the hang or after Redis resumes
// (when the shared cache may still hold the old "good"). Every OCSP
// request is answered while Redis hangs.
func TestRevocationWhileRedisHangs(t *testing.T) {
	proxy := storagetest.NewRedisProxy(t)
	ctx := context.Background()
	cache, events := redisVia(t, proxy.Addr)
	a := newFixture(t, func(o *ocsp.Options) {
		o.Cache = cache
		o.CertIssuer = recordingIssuer{cert: o.Issuers[0].Cert, key: o.Issuers[0].Signer, status: o.Status.(*fakeStatus)}
	})
	b := newFixture(t, func(o *ocsp.Options) {
		o.Issuers = []ocsp.Issuer{{ID: "int", Cert: a.ca.Cert, Signer: a.ca.Key}}
		o.Status, o.Cache = a.status, cache
		o.CertIssuer = recordingIssuer{cert: a.ca.Cert, key: a.ca.Key, status: a.status}
	})
	for _, f := range []*fixture{a, b} {
		stop, err := f.r.Subscribe(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(request(t, a.good, a.ca.Cert, crypto.SHA256))
	// answer asks f, and fails the test when no answer comes within a
	// generous bound (a request that waits on a hung Redis).
	answer := func(f *fixture, node string) int {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, "GET", f.srv.URL+path, nil)
		req.URL.Opaque = path
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("node %s gave no OCSP answer: %v", node, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return parse(t, body, a.good, a.ca.Cert).Status
	}
	for _, n := range []struct {
		f    *fixture
		name string
	}{{a, "A"}, {b, "B"}, {b, "B"}} { // B's second from its fast lane
		if s := answer(n.f, n.name); s != xocsp.Good {
			t.Fatalf("before: node %s answers %d", n.name, s)
		}
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { b.r.RunSweeper(sweepCtx, revokedIn{a.status}, 100*time.Millisecond); close(swept) }()
	defer func() { stopSweep(); <-swept }()

	proxy.Set(storagetest.ProxyHang)
	// Revoked through node A, as ra's hook does it: the record, then the
	// node's own invalidation and the event.
	revokeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	revoked := make(chan struct{})
	go func() {
		defer close(revoked)
		a.status.set(core.Certificate{Serial: "1001", IssuerID: "int", Status: core.StatusRevoked,
			RevokedAt: time.Now().UTC().Truncate(time.Second), RevocationReason: core.ReasonKeyCompromise})
		a.r.Invalidate(revokeCtx, "int", "1001") // the shared cache's part fails: it hangs
		events.Publish(revokeCtx, storage.TopicRevoked, storage.EncodeRevoked("int", "1001"))
	}()
	select {
	case <-revoked:
	case <-revokeCtx.Done():
		t.Fatal("the revocation did not return while Redis hangs")
	}
	for range 2 {
		if s := answer(a, "A"); s != xocsp.Revoked {
			t.Fatalf("the revoking node answers %d after the revocation, want revoked", s)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for answer(b, "B") != xocsp.Revoked {
		if time.Now().After(deadline) {
			t.Fatal("node B still answers good long after its sweep could see the revocation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 2 {
		if s := answer(b, "B"); s != xocsp.Revoked {
			t.Fatalf("node B answers %d after it answered revoked", s)
		}
	}
	proxy.Set(storagetest.ProxyPass)
	for range 3 {
		for _, n := range []struct {
			f    *fixture
			name string
		}{{a, "A"}, {b, "B"}} {
			if s := answer(n.f, n.name); s != xocsp.Revoked {
				t.Fatalf("after Redis resumed, node %s answers %d", n.name, s)
			}
		}
	}
}

// The status a cached answer gives is read from its DER: a wrong reading
// would serve a stale "good" (or refuse every cached answer).
func TestAnswerStatus(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		cert *x509.Certificate
		want int
	}{{f.good, 0}, {f.revoked, 1}, {f.unknown, 2}} {
		_, body := f.post(t, request(t, tc.cert, f.ca.Cert, crypto.SHA256))
		if got := ocsp.AnswerStatus(body); got != tc.want {
			t.Errorf("serial %x: status %d, want %d", tc.cert.SerialNumber, got, tc.want)
		}
	}
	_, body := f.post(t, []byte("garbage")) // malformedRequest: no answer
	if got := ocsp.AnswerStatus(body); got != -1 {
		t.Errorf("an error response: status %d, want -1", got)
	}
}
