package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate limits are fixed windows: at most limit events per key in each
// window of the given length, counted from the Unix epoch so every node
// agrees on the window. When the limit is reached, Allow says how long
// until the window ends (the Retry-After a client is given).

// MemoryLimiter counts in memory, for one node. Safe for concurrent use.
type MemoryLimiter struct {
	mu      sync.Mutex
	windows map[string]limitWindow
	now     func() time.Time
	sweep   time.Time
}

type limitWindow struct {
	end   time.Time
	count int
}

// NewMemoryLimiter returns an in-memory limiter; now nil means time.Now.
func NewMemoryLimiter(now func() time.Time) *MemoryLimiter {
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{windows: make(map[string]limitWindow), now: now}
}

func windowBounds(now time.Time, window time.Duration) (index int64, end time.Time) {
	idx := now.UnixNano() / int64(window)
	return idx, time.Unix(0, (idx+1)*int64(window))
}

// Allow counts one event for key and reports whether it is within limit
// events per window; if not, retryAfter is the time until the window ends.
// A limit ≤ 0 means unlimited.
func (m *MemoryLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if limit <= 0 || window <= 0 {
		return true, 0, nil
	}
	now := m.now()
	_, end := windowBounds(now, window)
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.After(m.sweep) { // forget finished windows now and then, so memory stays bounded
		for k, w := range m.windows {
			if !now.Before(w.end) {
				delete(m.windows, k)
			}
		}
		m.sweep = now.Add(time.Minute)
	}
	w := m.windows[key]
	if !now.Before(w.end) {
		w = limitWindow{end: end}
	}
	if w.count >= limit {
		return false, w.end.Sub(now), nil
	}
	w.count++
	m.windows[key] = w
	return true, 0, nil
}

// RedisLimiter counts in Redis, shared by every node.
type RedisLimiter struct {
	c      redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewRedisLimiter returns a Redis limiter. prefix "" means
// "strongroom:limit:"; now nil means time.Now.
func NewRedisLimiter(c redis.UniversalClient, prefix string, now func() time.Time) *RedisLimiter {
	if prefix == "" {
		prefix = "strongroom:limit:"
	}
	if now == nil {
		now = time.Now
	}
	return &RedisLimiter{c: c, prefix: prefix, now: now}
}

// Allow is MemoryLimiter.Allow, counted with INCR on one key per window.
func (r *RedisLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if limit <= 0 || window <= 0 {
		return true, 0, nil
	}
	now := r.now()
	idx, end := windowBounds(now, window)
	k := fmt.Sprintf("%s%s:%d:%d", r.prefix, key, int64(window/time.Second), idx)
	pipe := r.c.TxPipeline()
	incr := pipe.Incr(ctx, k)
	pipe.ExpireNX(ctx, k, end.Sub(now)+time.Second)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, 0, fmt.Errorf("counting rate limit in Redis: %w", err)
	}
	if incr.Val() > int64(limit) {
		return false, end.Sub(now), nil
	}
	return true, 0, nil
}
