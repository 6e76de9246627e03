package core

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// FailureLog logs requests that failed on the server's side. An internal
// error (500) is logged every time, at ERROR. A request refused because
// something it needs is down (503: the database unreachable, the HSM
// sealed) is logged at WARN at most once per Every, with how many like it
// were not: during an outage every request fails alike, and the request
// log already has one event for each. The zero value is ready to use.
type FailureLog struct {
	Every time.Duration // zero: 10 seconds

	mu    sync.Mutex
	last  time.Time
	quiet int
}

// Log logs one failed request with status; args are slog attributes.
func (f *FailureLog) Log(ctx context.Context, log *slog.Logger, status int, msg string, args ...any) {
	if status != http.StatusServiceUnavailable {
		log.ErrorContext(ctx, msg, args...)
		return
	}
	f.Warn(ctx, log, msg, args...)
}

// Warn logs a failure that repeats while something is down at WARN, at
// most once per Every, with how many were not logged since the last.
func (f *FailureLog) Warn(ctx context.Context, log *slog.Logger, msg string, args ...any) {
	every := f.Every
	if every == 0 {
		every = 10 * time.Second
	}
	f.mu.Lock()
	now := time.Now()
	if !f.last.IsZero() && now.Sub(f.last) < every {
		f.quiet++
		f.mu.Unlock()
		return
	}
	quiet := f.quiet
	f.last, f.quiet = now, 0
	f.mu.Unlock()
	if quiet > 0 {
		args = append(args, "not_logged_since_last", quiet)
	}
	log.WarnContext(ctx, msg, args...)
}
