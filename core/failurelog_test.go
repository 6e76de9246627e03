package core

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestFailureLog: every 500 is logged at ERROR; 503s at WARN once per
// interval, the next one saying how many were not logged.
func TestFailureLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	f := &FailureLog{Every: 50 * time.Millisecond}
	ctx := context.Background()
	for range 3 {
		f.Log(ctx, log, 500, "request failed", "err", "boom")
	}
	for range 100 {
		f.Log(ctx, log, 503, "request failed", "err", "database down")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || strings.Count(buf.String(), "level=ERROR") != 3 || !strings.Contains(lines[3], "level=WARN") {
		t.Fatalf("want 3 ERROR lines and one WARN, got:\n%s", buf.String())
	}
	time.Sleep(60 * time.Millisecond)
	buf.Reset()
	f.Log(ctx, log, 503, "request failed", "err", "database down")
	if !strings.Contains(buf.String(), "not_logged_since_last=99") {
		t.Fatalf("after the interval: %s", buf.String())
	}
}
