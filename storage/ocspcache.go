package storage

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The OCSP response caches hold opaque bytes under string keys with a TTL.
// Delete leaves a tombstone for a while that makes Put of the same key a
// no-op: a response signed from a status read just before a revocation
// cannot be cached after the revocation dropped the key.

// MemoryOCSPCache is an in-process cache, sharded to keep lock contention
// low under many concurrent readers.
type MemoryOCSPCache struct {
	shards    [32]cacheShard
	seed      maphash.Seed
	perShard  int
	tombstone time.Duration
	now       func() time.Time
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cacheItem
}

type cacheItem struct {
	val     []byte // nil for a tombstone
	expires time.Time
}

// NewMemoryOCSPCache holds up to maxEntries values (≤ 0 means 250,000:
// about 250 MiB of answers signed with P-256 responder certificates, which a
// single node should not exceed by default; an answer evicted costs one
// signature when asked for again)
// and keeps tombstones for tombstone (≤ 0 means one minute). a nil now
// means time.Now.
func NewMemoryOCSPCache(maxEntries int, tombstone time.Duration, now func() time.Time) *MemoryOCSPCache {
	if maxEntries <= 0 {
		maxEntries = 250_000
	}
	if tombstone <= 0 {
		tombstone = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	c := &MemoryOCSPCache{seed: maphash.MakeSeed(), perShard: max(1, maxEntries/32), tombstone: tombstone, now: now}
	for i := range c.shards {
		c.shards[i].m = map[string]cacheItem{}
	}
	return c
}

func (c *MemoryOCSPCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// Get returns the value under key, if present and not expired.
func (c *MemoryOCSPCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	s := c.shard(key)
	s.mu.RLock()
	it, ok := s.m[key]
	s.mu.RUnlock()
	if !ok || it.val == nil || !c.now().Before(it.expires) {
		return nil, false, nil
	}
	return it.val, true, nil
}

// Put stores val under key for ttl, unless key was deleted within the
// tombstone period. The cache keeps val without copying it.
func (c *MemoryOCSPCache) Put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 || val == nil {
		return nil
	}
	now := c.now()
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.m[key]; ok && it.val == nil && now.Before(it.expires) {
		return nil // tombstoned
	}
	if len(s.m) >= c.perShard {
		s.evict(now, c.perShard)
	}
	s.m[key] = cacheItem{val: val, expires: now.Add(ttl)}
	return nil
}

// evict drops expired items, then arbitrary values (never a live
// tombstone: it is what keeps a stale answer out) until there is room for
// one more below limit. Tombstones live one tombstone period, so a shard
// can only exceed limit by the revocations of that period.
func (s *cacheShard) evict(now time.Time, limit int) {
	for k, it := range s.m {
		if !now.Before(it.expires) {
			delete(s.m, k)
		}
	}
	for k, it := range s.m {
		if len(s.m) < limit {
			break
		}
		if it.val != nil {
			delete(s.m, k)
		}
	}
}

// Delete drops keys and tombstones them.
func (c *MemoryOCSPCache) Delete(ctx context.Context, keys ...string) error {
	exp := c.now().Add(c.tombstone)
	for _, k := range keys {
		s := c.shard(k)
		s.mu.Lock()
		s.m[k] = cacheItem{expires: exp}
		s.mu.Unlock()
	}
	return nil
}

// redisCacheWait bounds each wait of an OCSP request for Redis (Get,
// Put): a Redis that hangs (connections open, nothing answered) must cost
// a fresh signature, not a hung request. Redis answers in well under a
// millisecond when it is well.
const redisCacheWait = 500 * time.Millisecond

// redisDeleteWait bounds Delete when ctx has no earlier deadline.
const redisDeleteWait = 30 * time.Second

// RedisOCSPCache keeps values in Redis under prefix, shared by all nodes.
// Get and Put wait at most redisCacheWait; Delete as long as its ctx
// allows (at most redisDeleteWait).
type RedisOCSPCache struct {
	c         redis.UniversalClient
	prefix    string
	tombstone time.Duration
}

// NewRedisOCSPCache returns a cache on c. prefix "" means
// "strongroom:ocsp:"; tombstone ≤ 0 means one minute.
func NewRedisOCSPCache(c redis.UniversalClient, prefix string, tombstone time.Duration) *RedisOCSPCache {
	if prefix == "" {
		prefix = "strongroom:ocsp:"
	}
	if tombstone <= 0 {
		tombstone = time.Minute
	}
	return &RedisOCSPCache{c: c, prefix: prefix, tombstone: tombstone}
}

// The value and its tombstone share a hash tag, so the script works on a
// Redis Cluster too.
func (r *RedisOCSPCache) keys(key string) (val, tomb string) {
	k := r.prefix + "{" + key + "}"
	return k, k + ":deleted"
}

// putIfLive sets KEYS[1] unless the tombstone KEYS[2] exists.
var putIfLive = redis.NewScript(`if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// Get returns the value under key, if present, waiting at most
// redisCacheWait.
func (r *RedisOCSPCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	k, _ := r.keys(key)
	v, err := redisWithin(ctx, redisCacheWait, func(ctx context.Context) ([]byte, error) {
		return r.c.Get(ctx, k).Bytes()
	})
	if err == redis.Nil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading cached OCSP response: %w", err)
	}
	return v, true, nil
}

// Put stores val under key for ttl, unless key was deleted within the
// tombstone period. It waits at most redisCacheWait.
func (r *RedisOCSPCache) Put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl < time.Millisecond || val == nil {
		return nil
	}
	k, tomb := r.keys(key)
	_, err := redisWithin(ctx, redisCacheWait, func(ctx context.Context) (any, error) {
		return nil, putIfLive.Run(ctx, r.c, []string{k, tomb}, val, ttl.Milliseconds()).Err()
	})
	if err != nil {
		return fmt.Errorf("caching OCSP response: %w", err)
	}
	return nil
}

// Delete drops keys on every node and tombstones them. It waits as long
// as ctx allows, however go-redis is configured.
func (r *RedisOCSPCache) Delete(ctx context.Context, keys ...string) error {
	_, err := redisWithin(ctx, redisDeleteWait, func(ctx context.Context) ([]redis.Cmder, error) {
		return r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, key := range keys {
				k, tomb := r.keys(key)
				p.Set(ctx, tomb, 1, r.tombstone)
				p.Del(ctx, k)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("dropping cached OCSP responses: %w", err)
	}
	return nil
}
