package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/storage"
)

// events publishes and subscribes (storage.MemoryEvents, storage.RedisEvents).
type events interface {
	ocsp.Subscriber
	Publish(ctx context.Context, topic string, msg []byte) error
}

// shared is the fast state nodes share: in memory for one node, in Redis
// when redis.addr is configured.
type shared struct {
	events    events
	ocspCache ocsp.Cache
	nonces    acme.Nonces
	limiter   api.RateLimiter // also an acme.RateLimiter
	close     func()
	// ping checks the shared store (nil: memory, always there).
	ping func(ctx context.Context) error
}

func newShared(ctx context.Context, cfg *config.Config, n *node) (*shared, error) {
	if cfg.Redis.Addr == "" {
		oc, err := ocspSettings(cfg)
		if err != nil {
			return nil, err
		}
		return &shared{
			events:    storage.NewMemoryEvents(),
			ocspCache: storage.NewMemoryOCSPCache(oc.CacheEntries, 0, nil),
			nonces:    storage.NewMemoryNonces(0, 0, nil),
			limiter:   n.memoryLimiter(),
			close:     func() {},
		}, nil
	}
	// go-redis's own lines (a pool that cannot dial, after five attempts)
	// go to the node's log beside ours, not raw to stderr; its logger is
	// process-wide. Context deadlines bound its socket waits, so a Redis
	// that hangs holds no caller past its deadline (storage bounds every
	// wait as well: redisWithin).
	redis.SetLogger(storage.RedisLog{Log: n.log})
	rc := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB,
		Password: os.Getenv(config.EnvRedisPassword), ContextTimeoutEnabled: true})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		rc.Close()
		return nil, fmt.Errorf("connecting to Redis at %s: %w", cfg.Redis.Addr, err)
	}
	redisPrefix := cfg.Redis.KeyPrefix()
	return &shared{
		events:    storage.NewRedisEvents(rc, redisPrefix, n.log),
		ocspCache: storage.NewRedisOCSPCache(rc, redisPrefix+"ocsp:", 0),
		nonces:    storage.NewRedisNonces(rc, redisPrefix+"nonce:", 0),
		limiter:   storage.NewRedisLimiter(rc, redisPrefix+"rl:", nil),
		close:     func() { rc.Close() },
		ping:      func(ctx context.Context) error { return rc.Ping(ctx).Err() },
	}, nil
}
