package core

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFailureLog: every 500 is logged at ERROR; 503s at WARN once per
// interval, and at the end of an interval with failures not logged, the
// last of them with how many there were, without waiting for another
// failure.
func TestFailureLog(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	f := &FailureLog{Every: 50 * time.Millisecond}
	ctx := context.Background()
	for range 3 {
		f.Log(ctx, log, 500, "request failed", "err", "boom")
	}
	for i := range 100 {
		f.Log(ctx, log, 503, "request failed", "err", fmt.Sprintf("database down %d", i))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || strings.Count(buf.String(), "level=ERROR") != 3 || !strings.Contains(lines[3], "level=WARN") {
		t.Fatalf("want 3 ERROR lines and one WARN, got:\n%s", buf.String())
	}
	// The burst ends; its count is logged at the end of the interval.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "not_logged_since_last") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[4], "not_logged_since_last=99") || !strings.Contains(lines[4], `"database down 99"`) {
		t.Fatalf("after the burst, want the last failure with the count of 99:\n%s", buf.String())
	}
	// That line started an interval: a failure within it is counted, and
	// flushed alone at its end.
	f.Log(ctx, log, 503, "request failed", "err", "database down again")
	for strings.Count(buf.String(), "\n") < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(buf.String(), "\n"); n != 6 || !strings.Contains(buf.String(), "not_logged_since_last=1") {
		t.Fatalf("a failure within the flushed interval:\n%s", buf.String())
	}
	// A quiet interval flushes nothing; the next failure is logged at once.
	time.Sleep(60 * time.Millisecond)
	f.Log(ctx, log, 503, "request failed", "err", "down once more")
	if n := strings.Count(buf.String(), "\n"); n != 7 || strings.Count(buf.String(), "not_logged_since_last") != 2 {
		t.Fatalf("after a quiet interval:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
