package storage

import (
	"context"
	"time"
)

// redisWithin runs fn with a context that ends after d (or with ctx) and
// returns when fn does or when that context ends, whichever is first.
//
// go-redis bounds its socket reads by Options.ReadTimeout (3 s by
// default, per attempt, with retries) and ignores the context's deadline
// unless Options.ContextTimeoutEnabled is set; a Redis that hangs
// (connections open, nothing answered) would hold the caller for many
// seconds. fn is left to finish on its own (within go-redis's own
// timeouts) when the wait ends first; its result is then dropped.
func redisWithin[T any](ctx context.Context, d time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer cancel()
		v, err := fn(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
