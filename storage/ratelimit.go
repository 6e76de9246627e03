package storage

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate limits are sliding windows: at most limit events per key in any
// stretch of time as long as the window, however the events fall. (Fixed
// windows, counted from the epoch, let a client take the limit at the end
// of one window and again at the start of the next: twice the limit within
// minutes.) Events are counted in limitBuckets sub-buckets per window, and
// an event counts until its whole bucket has left the window, so the bound
// holds exactly and errs towards refusing: an event may count for up to a
// bucket (a minute of an hour) longer than the window. Only allowed events
// count, so a client that keeps asking while refused is not refused for
// longer. When the limit is reached, Allow says how long until enough
// events have left the window to allow one more (the Retry-After a client
// is given). Every node computes buckets from its own clock, as the nodes'
// clocks are assumed to agree to well under a bucket.
const limitBuckets = 60

// bucketCount is the number of events in one sub-bucket.
type bucketCount struct {
	idx int64 // the bucket: time since the epoch / bucket length
	n   int
}

// slide is one window's arithmetic at one instant.
type slide struct {
	bucket time.Duration // the sub-bucket length
	cur    int64         // the current bucket
}

func slideOf(now time.Time, window time.Duration) slide {
	b := max(window/limitBuckets, 1)
	return slide{bucket: b, cur: now.UnixNano() / int64(b)}
}

// counts reports whether bucket idx still counts.
func (s slide) counts(idx int64) bool { return idx >= s.cur-limitBuckets }

// retryAfter is how long from now until the events in counted (oldest
// first) fall below limit: the bucket whose leaving does it stops counting
// when the current bucket is limitBuckets+1 past it.
func (s slide) retryAfter(now time.Time, counted []bucketCount, limit int) time.Duration {
	total := 0
	for _, c := range counted {
		total += c.n
	}
	last := s.cur
	for _, c := range counted {
		total -= c.n
		if total < limit {
			last = c.idx
			break
		}
	}
	return time.Unix(0, (last+limitBuckets+1)*int64(s.bucket)).Sub(now)
}

// MemoryLimiter counts in memory, for one node. Safe for concurrent use.
type MemoryLimiter struct {
	mu    sync.Mutex
	keys  map[string]*memCounts // by key and window
	now   func() time.Time
	sweep time.Time
}

// NewMemoryLimiter returns an in-memory limiter; now nil means time.Now.
func NewMemoryLimiter(now func() time.Time) *MemoryLimiter {
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{keys: make(map[string]*memCounts), now: now}
}

func memKey(key string, window time.Duration) string {
	return key + "\x00" + strconv.FormatInt(int64(window), 10)
}

// memCounts are one key's counted buckets for one window, oldest first.
type memCounts struct {
	window time.Duration
	bs     []bucketCount
}

// Allow counts one event for key and reports whether it is within limit
// events per window; if not, retryAfter is the time until one more would
// be. A limit ≤ 0 means unlimited.
func (m *MemoryLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if limit <= 0 || window <= 0 {
		return true, 0, nil
	}
	now := m.now()
	s := slideOf(now, window)
	k := memKey(key, window)
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.After(m.sweep) { // forget keys with nothing in their window, so memory stays bounded
		for k, mc := range m.keys {
			if len(mc.bs) == 0 || !slideOf(now, mc.window).counts(mc.bs[len(mc.bs)-1].idx) {
				delete(m.keys, k)
			}
		}
		m.sweep = now.Add(time.Minute)
	}
	mc := m.keys[k]
	if mc == nil {
		mc = &memCounts{window: window}
		m.keys[k] = mc
	}
	bs := mc.bs
	drop := 0
	for drop < len(bs) && !s.counts(bs[drop].idx) {
		drop++
	}
	bs = bs[drop:]
	total := 0
	for _, b := range bs {
		total += b.n
	}
	if total >= limit {
		mc.bs = bs
		return false, s.retryAfter(now, bs, limit), nil
	}
	if n := len(bs); n > 0 && bs[n-1].idx >= s.cur { // (>: the clock stepped back)
		bs[n-1].n++
	} else {
		bs = append(bs, bucketCount{idx: s.cur, n: 1})
	}
	mc.bs = bs
	return true, 0, nil
}

// Refund takes back one event counted for key (the newest), for an
// operation that was counted and then did not happen: a refused or failed
// issuance does not use up the cap.
func (m *MemoryLimiter) Refund(ctx context.Context, key string, window time.Duration) error {
	if window <= 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mc := m.keys[memKey(key, window)]
	if mc == nil {
		return nil
	}
	for i := len(mc.bs) - 1; i >= 0; i-- {
		if mc.bs[i].n > 0 {
			mc.bs[i].n--
			return nil
		}
	}
	return nil
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

// slideScript keeps one hash per key and window, bucket → count. In one
// step it drops the buckets that have left the window and either counts
// the event (under the limit) or returns the counted buckets, so nodes
// asking at once never both take the last place.
//
// KEYS[1] the hash; ARGV: current bucket, oldest bucket that counts, limit,
// expiry in ms. Returns {1} when counted, else {0, idx1, n1, idx2, n2, …}.
var slideScript = redis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
local oldest, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local total, kept = 0, {}
for i = 1, #h, 2 do
  local idx, n = tonumber(h[i]), tonumber(h[i + 1])
  if idx < oldest then
    redis.call('HDEL', KEYS[1], h[i])
  else
    total = total + n
    kept[#kept + 1] = h[i]
    kept[#kept + 1] = n
  end
end
if total < limit then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1}
end
local out = {0}
for i = 1, #kept do out[#out + 1] = kept[i] end
return out
`)

// refundScript takes one event back from the newest bucket that holds
// one. KEYS[1] the hash.
var refundScript = redis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
local newest, newestN = nil, 0
for i = 1, #h, 2 do
  local idx, n = tonumber(h[i]), tonumber(h[i + 1])
  if n > 0 and (newest == nil or idx > tonumber(newest)) then newest, newestN = h[i], n end
end
if newest ~= nil then
  if newestN == 1 then redis.call('HDEL', KEYS[1], newest) else redis.call('HINCRBY', KEYS[1], newest, -1) end
end
return 0
`)

// Refund is MemoryLimiter.Refund, in Redis.
func (r *RedisLimiter) Refund(ctx context.Context, key string, window time.Duration) error {
	if window <= 0 {
		return nil
	}
	if err := refundScript.Run(ctx, r.c, []string{r.key(key, window)}).Err(); err != nil {
		return fmt.Errorf("refunding rate limit in Redis: %w", err)
	}
	return nil
}

func (r *RedisLimiter) key(key string, window time.Duration) string {
	return fmt.Sprintf("%s%s:w%d", r.prefix, key, int64(window/time.Millisecond))
}

// Allow is MemoryLimiter.Allow, counted in Redis.
func (r *RedisLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if limit <= 0 || window <= 0 {
		return true, 0, nil
	}
	now := r.now()
	s := slideOf(now, window)
	k := r.key(key, window)
	ttl := (window + 2*s.bucket).Milliseconds() + 1
	res, err := slideScript.Run(ctx, r.c, []string{k}, s.cur, s.cur-limitBuckets, limit, ttl).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("counting rate limit in Redis: %w", err)
	}
	if len(res) > 0 && res[0] == 1 {
		return true, 0, nil
	}
	counted := make([]bucketCount, 0, len(res)/2)
	for i := 1; i+1 < len(res); i += 2 {
		counted = append(counted, bucketCount{idx: res[i], n: int(res[i+1])})
	}
	sort.Slice(counted, func(i, j int) bool { return counted[i].idx < counted[j].idx })
	return false, s.retryAfter(now, counted, limit), nil
}
