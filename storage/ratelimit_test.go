package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

type limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
}

func TestRateLimiters(t *testing.T) {
	now := time.Unix(3600*1000+600, 0) // ten minutes into an hour window
	clock := func() time.Time { return now }
	limiters := map[string]func(t *testing.T) limiter{
		"memory": func(t *testing.T) limiter { return storage.NewMemoryLimiter(clock) },
		"redis": func(t *testing.T) limiter {
			c := redisClient(t)
			prefix := "test:limit:" + time.Now().Format(time.RFC3339Nano) + ":"
			return storage.NewRedisLimiter(c, prefix, clock)
		},
	}
	for name, mk := range limiters {
		t.Run(name, func(t *testing.T) {
			now = time.Unix(3600*1000+600, 0)
			ctx := context.Background()
			l := mk(t)
			for i := range 3 {
				if ok, _, err := l.Allow(ctx, "k", 3, time.Hour); !ok || err != nil {
					t.Fatalf("event %d refused: %v", i+1, err)
				}
			}
			ok, retry, err := l.Allow(ctx, "k", 3, time.Hour)
			if ok || err != nil || retry != 50*time.Minute {
				t.Fatalf("4th event: ok=%v retry=%v err=%v; want refused with 50m", ok, retry, err)
			}
			if ok, _, _ := l.Allow(ctx, "other", 3, time.Hour); !ok {
				t.Fatal("another key is limited")
			}
			if ok, _, _ := l.Allow(ctx, "k", 0, time.Hour); !ok {
				t.Fatal("limit 0 should mean unlimited")
			}
			now = now.Add(time.Hour)
			if ok, _, _ := l.Allow(ctx, "k", 3, time.Hour); !ok {
				t.Fatal("next window still limited")
			}
		})
	}
}
