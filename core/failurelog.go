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
	// The last failure not logged, and its logger: at the end of the
	// interval it is logged with the count, so a burst that ends is not
	// left unreported until the next failure (days later, perhaps).
	pendingLog  *slog.Logger
	pendingMsg  string
	pendingArgs []any
}

// Log logs one failed request with status; args are slog attributes.
func (f *FailureLog) Log(ctx context.Context, log *slog.Logger, status int, msg string, args ...any) {
	if status != http.StatusServiceUnavailable {
		log.ErrorContext(ctx, msg, args...)
		return
	}
	f.Warn(ctx, log, msg, args...)
}

func (f *FailureLog) every() time.Duration {
	if f.Every == 0 {
		return 10 * time.Second
	}
	return f.Every
}

// Warn logs a failure that repeats while something is down at WARN, at
// most once per Every. Failures not logged are counted: the last of them
// is logged at the end of the interval with how many there were
// (not_logged_since_last), and that line starts the next interval.
func (f *FailureLog) Warn(ctx context.Context, log *slog.Logger, msg string, args ...any) {
	every := f.every()
	f.mu.Lock()
	now := time.Now()
	if !f.last.IsZero() && now.Sub(f.last) < every {
		f.quiet++
		f.pendingLog, f.pendingMsg, f.pendingArgs = log, msg, args
		if f.quiet == 1 {
			time.AfterFunc(f.last.Add(every).Sub(now), f.flush)
		}
		f.mu.Unlock()
		return
	}
	f.last = now
	f.mu.Unlock()
	log.WarnContext(ctx, msg, args...)
}

// flush logs the last failure not logged, with the count, at the end of
// its interval.
func (f *FailureLog) flush() {
	f.mu.Lock()
	quiet, log, msg, args := f.quiet, f.pendingLog, f.pendingMsg, f.pendingArgs
	f.last, f.quiet, f.pendingLog, f.pendingArgs = time.Now(), 0, nil, nil
	f.mu.Unlock()
	if quiet > 0 {
		log.Warn(msg, append(append([]any(nil), args...), "not_logged_since_last", quiet)...)
	}
}
