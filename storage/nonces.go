package storage

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Nonces for ACME's Replay-Nonce (RFC 8555 §6.5): each value is issued once
// and may be redeemed once, until it expires. MemoryNonces serves one node;
// RedisNonces lets several nodes share them.

// nonceBytes is the random length of a nonce: 128 bits, base64url encoded.
const nonceBytes = 16

func newNonce() (string, error) {
	b := make([]byte, nonceBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// validNonceShape rejects values that cannot be ours before any lookup, so
// a client cannot make the store hash or query arbitrary-length strings.
func validNonceShape(n string) bool {
	if len(n) != base64.RawURLEncoding.EncodedLen(nonceBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(n)
	return err == nil
}

// MemoryNonces keeps at most max nonces for ttl each; when full, the oldest
// is forgotten (a client holding it gets badNonce and retries). Safe for
// concurrent use.
type MemoryNonces struct {
	mu    sync.Mutex
	live  map[string]time.Time // nonce → expiry
	queue []string             // issue order, for eviction; may hold redeemed nonces
	max   int
	ttl   time.Duration
	now   func() time.Time
}

// NewMemoryNonces returns an in-memory store. max ≤ 0 means 100,000;
// ttl ≤ 0 means one hour; now nil means time.Now.
func NewMemoryNonces(max int, ttl time.Duration, now func() time.Time) *MemoryNonces {
	if max <= 0 {
		max = 100_000
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryNonces{live: make(map[string]time.Time), max: max, ttl: ttl, now: now}
}

// Issue makes a fresh nonce.
func (m *MemoryNonces) Issue(ctx context.Context) (string, error) {
	n, err := newNonce()
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// Drop from the front what expired, was redeemed, or exceeds the bound.
	for len(m.queue) > 0 {
		front := m.queue[0]
		exp, ok := m.live[front]
		if ok && len(m.live) < m.max && now.Before(exp) {
			break
		}
		delete(m.live, front)
		m.queue[0] = ""
		m.queue = m.queue[1:]
	}
	// Redeemed nonces stay in the queue until they reach its front; a
	// client that holds one nonce unredeemed while redeeming many others
	// would grow it without bound (up to ttl × request rate). Compacting
	// once it holds twice the bound keeps memory at O(max), amortised O(1).
	if len(m.queue) >= 2*m.max {
		kept := make([]string, 0, len(m.live)+1)
		for _, q := range m.queue {
			if _, ok := m.live[q]; ok {
				kept = append(kept, q)
			}
		}
		m.queue = kept
	}
	m.live[n] = now.Add(m.ttl)
	m.queue = append(m.queue, n)
	return n, nil
}

// Redeem reports whether nonce was issued, unexpired and not redeemed
// before; it is consumed either way.
func (m *MemoryNonces) Redeem(ctx context.Context, nonce string) (bool, error) {
	if !validNonceShape(nonce) {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.live[nonce]
	if !ok {
		return false, nil
	}
	delete(m.live, nonce)
	return m.now().Before(exp), nil
}

// Len reports how many nonces are outstanding (for tests and metrics).
func (m *MemoryNonces) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

// RedisNonces keeps nonces in Redis under prefix, each with a TTL; Redeem
// deletes the key, so exactly one node can redeem a nonce.
type RedisNonces struct {
	c      redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisNonces returns a Redis store. prefix "" means "strongroom:nonce:";
// ttl ≤ 0 means one hour.
func NewRedisNonces(c redis.UniversalClient, prefix string, ttl time.Duration) *RedisNonces {
	if prefix == "" {
		prefix = "strongroom:nonce:"
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &RedisNonces{c: c, prefix: prefix, ttl: ttl}
}

// Issue makes a fresh nonce and stores it.
func (r *RedisNonces) Issue(ctx context.Context) (string, error) {
	n, err := newNonce()
	if err != nil {
		return "", err
	}
	if err := r.c.Set(ctx, r.prefix+n, 1, r.ttl).Err(); err != nil {
		return "", fmt.Errorf("storing nonce in Redis: %w", err)
	}
	return n, nil
}

// Redeem deletes the nonce and reports whether it was there.
func (r *RedisNonces) Redeem(ctx context.Context, nonce string) (bool, error) {
	if !validNonceShape(nonce) {
		return false, nil
	}
	n, err := r.c.Del(ctx, r.prefix+nonce).Result()
	if err != nil {
		return false, fmt.Errorf("redeeming nonce in Redis: %w", err)
	}
	return n == 1, nil
}
