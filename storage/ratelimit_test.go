package storage_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

type limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
}

// limiterKinds makes each limiter on a shared fake clock; the Redis ones
// made by one call share a key prefix, as the nodes of one cluster do.
func limiterKinds(clock func() time.Time) map[string]func(t *testing.T) func() limiter {
	return map[string]func(t *testing.T) func() limiter{
		"memory": func(t *testing.T) func() limiter {
			l := storage.NewMemoryLimiter(clock)
			return func() limiter { return l }
		},
		"redis": func(t *testing.T) func() limiter {
			c := redisClient(t)
			prefix := "test:limit:" + t.Name() + time.Now().Format(time.RFC3339Nano) + ":"
			return func() limiter { return storage.NewRedisLimiter(c, prefix, clock) }
		},
	}
}

func TestRateLimiters(t *testing.T) {
	// Thirty seconds into a one-minute bucket, ten and a half minutes
	// into an hour counted from the epoch.
	t0 := time.Unix(3600*1000+630, 0)
	now := t0
	clock := func() time.Time { return now }
	for name, mk := range limiterKinds(clock) {
		t.Run(name, func(t *testing.T) {
			now = t0
			ctx := context.Background()
			l := mk(t)()
			allow := func(key string, limit int) (bool, time.Duration) {
				t.Helper()
				ok, retry, err := l.Allow(ctx, key, limit, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				return ok, retry
			}
			for i := range 3 {
				if ok, _ := allow("k", 3); !ok {
					t.Fatalf("event %d refused", i+1)
				}
			}
			// The events count until their bucket has left the hour:
			// 60.5 minutes from now (never less than the window).
			want := time.Hour + 30*time.Second
			if ok, retry := allow("k", 3); ok || retry != want {
				t.Fatalf("4th event: ok=%v retry=%v; want refused for %v", ok, retry, want)
			}
			// Asking while refused does not make the wait longer.
			for range 20 {
				allow("k", 3)
			}
			if ok, _ := allow("other", 3); !ok {
				t.Fatal("another key is limited")
			}
			if ok, _ := allow("k", 0); !ok {
				t.Fatal("limit 0 should mean unlimited")
			}
			// A fixed window counted from the epoch would start afresh
			// 49.5 minutes from now and allow three more at once: no
			// hour may hold more than three.
			now = t0.Add(55 * time.Minute)
			if ok, retry := allow("k", 3); ok || retry != want-55*time.Minute {
				t.Fatalf("55 minutes on: ok=%v retry=%v; want refused for %v", ok, retry, want-55*time.Minute)
			}
			now = t0.Add(want - time.Second)
			if ok, _ := allow("k", 3); ok {
				t.Fatal("allowed a second before the events left the window")
			}
			now = t0.Add(want)
			for i := range 3 {
				if ok, _ := allow("k", 3); !ok {
					t.Fatalf("after the wait, event %d refused", i+1)
				}
			}
			if ok, _ := allow("k", 3); ok {
				t.Fatal("a 4th event allowed after the wait")
			}
		})
	}
}

// TestRateLimitersSpreadEvents: with events spread over the hour, each
// refusal's wait is until the oldest leaves, and one more is allowed then.
func TestRateLimitersSpreadEvents(t *testing.T) {
	t0 := time.Unix(3600*2000, 0)
	now := t0
	clock := func() time.Time { return now }
	for name, mk := range limiterKinds(clock) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := mk(t)()
			for i, at := range []time.Duration{0, 20 * time.Minute, 40 * time.Minute} {
				now = t0.Add(at)
				if ok, _, err := l.Allow(ctx, "k", 3, time.Hour); !ok || err != nil {
					t.Fatalf("event %d refused: %v", i+1, err)
				}
			}
			now = t0.Add(50 * time.Minute)
			ok, retry, _ := l.Allow(ctx, "k", 3, time.Hour)
			if ok || retry != 11*time.Minute {
				t.Fatalf("ok=%v retry=%v; want refused until the first event's bucket leaves (11m)", ok, retry)
			}
			now = now.Add(retry)
			if ok, _, _ := l.Allow(ctx, "k", 3, time.Hour); !ok {
				t.Fatal("refused once the first event left")
			}
			ok, retry, _ = l.Allow(ctx, "k", 3, time.Hour)
			if ok || retry != 20*time.Minute {
				t.Fatalf("ok=%v retry=%v; want refused until the second event leaves (20m)", ok, retry)
			}
			// Another window for the same key counts apart.
			if ok, _, _ := l.Allow(ctx, "k", 3, time.Minute); !ok {
				t.Fatal("the one-minute window is limited by the hourly one")
			}
		})
	}
}

// TestRateLimitersConcurrent: many callers at once, and with Redis
// several nodes, never take more than the limit between them.
func TestRateLimitersConcurrent(t *testing.T) {
	for name, mk := range limiterKinds(nil) {
		t.Run(name, func(t *testing.T) {
			node := mk(t)
			nodes := []limiter{node(), node(), node()}
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for g := range 24 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 10 {
						ok, _, err := nodes[g%len(nodes)].Allow(context.Background(), "shared", 50, time.Hour)
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							allowed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if n := allowed.Load(); n != 50 {
				t.Fatalf("%d of 240 allowed; want exactly 50", n)
			}
		})
	}
}

// TestRateLimitersRefund: a refunded event no longer counts, and a refund
// with nothing counted changes nothing.
func TestRateLimitersRefund(t *testing.T) {
	for name, mk := range limiterKinds(nil) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := mk(t)().(interface {
				limiter
				Refund(ctx context.Context, key string, window time.Duration) error
			})
			if err := l.Refund(ctx, "r", time.Hour); err != nil {
				t.Fatalf("refund with nothing counted: %v", err)
			}
			for range 2 {
				if ok, _, err := l.Allow(ctx, "r", 2, time.Hour); !ok || err != nil {
					t.Fatalf("refused: %v", err)
				}
			}
			if ok, _, _ := l.Allow(ctx, "r", 2, time.Hour); ok {
				t.Fatal("a third allowed")
			}
			if err := l.Refund(ctx, "r", time.Hour); err != nil {
				t.Fatal(err)
			}
			if ok, _, _ := l.Allow(ctx, "r", 2, time.Hour); !ok {
				t.Fatal("refused after a refund")
			}
			if ok, _, _ := l.Allow(ctx, "r", 2, time.Hour); ok {
				t.Fatal("a refund gave back more than one")
			}
		})
	}
}
