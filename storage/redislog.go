package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// RedisLog carries go-redis's own log lines (a connection pool that
// cannot dial, a connection closed with an error), which it otherwise
// writes unstructured to stderr, into a structured log at WARN. Install
// it with redis.SetLogger, go-redis's one process-wide logger.
type RedisLog struct{ Log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l RedisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	l.Log.WarnContext(ctx, "redis client", "detail", msg)
}
