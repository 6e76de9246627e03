package main

import (
	"context"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// Without Redis the rate limiter is the process's: a seal and unseal
// rebuilds the app (and newShared), and must not reset the hourly counts.
func TestMemoryLimiterOutlivesTheApp(t *testing.T) {
	n := &node{cfg: config.Default()}
	first, err := newShared(context.Background(), n.cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newShared(context.Background(), n.cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	if first.limiter != second.limiter {
		t.Fatal("each app build gets a new in-memory limiter: an unseal resets every rate limit")
	}
}

// Two clusters sharing one Redis database with their own redis.prefix do
// not share rate limits (nor nonces, caches or events, which take the same
// prefix); the same prefix does.
func TestRedisPrefixSeparatesClusters(t *testing.T) {
	addr := storagetest.RedisAddr()
	mk := func(prefix string) *shared {
		t.Helper()
		cfg := config.Default()
		cfg.Redis.Addr, cfg.Redis.Prefix = addr, prefix
		s, err := newShared(context.Background(), cfg, &node{cfg: cfg})
		if err != nil {
			storagetest.ServiceMissing(t, "Redis at "+addr, err)
		}
		t.Cleanup(s.close)
		return s
	}
	run := time.Now().Format("150405.000000")
	a, b, a2 := mk("test-a-"+run+":"), mk("test-b-"+run+":"), mk("test-a-"+run+":")
	ctx := context.Background()
	allow := func(s *shared) bool {
		ok, _, err := s.limiter.Allow(ctx, "k", 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !allow(a) || !allow(b) {
		t.Fatal("one cluster's count reached the other")
	}
	if allow(a2) {
		t.Fatal("two nodes with the same prefix do not share the count")
	}
}
