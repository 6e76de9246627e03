package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

type nonceStore interface {
	Issue(ctx context.Context) (string, error)
	Redeem(ctx context.Context, nonce string) (bool, error)
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: storagetest.RedisAddr(), MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		storagetest.ServiceMissing(t, "Redis at "+storagetest.RedisAddr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNonces(t *testing.T) {
	stores := map[string]func(t *testing.T) nonceStore{
		"memory": func(t *testing.T) nonceStore { return storage.NewMemoryNonces(0, 0, nil) },
		"redis": func(t *testing.T) nonceStore {
			return storage.NewRedisNonces(redisClient(t), "test:nonce:"+t.Name()+":", time.Minute)
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := mk(t)
			n, err := s.Issue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []bool{true, false} {
				if ok, err := s.Redeem(ctx, n); ok != want || err != nil {
					t.Fatalf("redeem #%d = %v, %v; want %v", i+1, ok, err, want)
				}
			}
			for _, bad := range []string{"", "x", n + "x", "AAAAAAAAAAAAAAAAAAAAAA"} {
				if ok, err := s.Redeem(ctx, bad); ok || err != nil {
					t.Fatalf("redeem %q = %v, %v; want false", bad, ok, err)
				}
			}
			// Concurrent redeems of one nonce: exactly one wins.
			n, _ = s.Issue(ctx)
			var wg sync.WaitGroup
			wins := make(chan bool, 8)
			for range 8 {
				wg.Go(func() {
					ok, _ := s.Redeem(ctx, n)
					wins <- ok
				})
			}
			wg.Wait()
			close(wins)
			count := 0
			for w := range wins {
				if w {
					count++
				}
			}
			if count != 1 {
				t.Fatalf("%d concurrent redeems succeeded, want 1", count)
			}
		})
	}
}

func TestMemoryNoncesBoundAndExpiry(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	s := storage.NewMemoryNonces(3, time.Minute, func() time.Time { return now })
	var issued []string
	for range 5 {
		n, _ := s.Issue(ctx)
		issued = append(issued, n)
	}
	if s.Len() > 3 {
		t.Fatalf("%d nonces kept, bound is 3", s.Len())
	}
	if ok, _ := s.Redeem(ctx, issued[0]); ok {
		t.Fatal("evicted nonce redeemed")
	}
	if ok, _ := s.Redeem(ctx, issued[4]); !ok {
		t.Fatal("newest nonce not redeemable")
	}
	now = now.Add(2 * time.Minute)
	if ok, _ := s.Redeem(ctx, issued[3]); ok {
		t.Fatal("expired nonce redeemed")
	}
}
