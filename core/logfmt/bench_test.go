package logfmt

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkRequest formats the event of server.Server.logRequest — the one
// log line per HTTP request — as logRequest does (a Record handed to the
// handler), through logfmt and through slog, to io.Discard.
func BenchmarkRequest(b *testing.B) {
	handlers := []struct {
		name string
		h    slog.Handler
	}{
		{"text/logfmt", NewText(io.Discard, nil)},
		{"text/slog", slog.NewTextHandler(io.Discard, nil)},
		{"json/logfmt", NewJSON(io.Discard, nil)},
		{"json/slog", slog.NewJSONHandler(io.Discard, nil)},
		// The cost of building the record, paid whatever the handler.
		{"record-only", slog.DiscardHandler},
	}
	const path = "/ocsp/MFMwUTBPME0wSzAHBgUrDgMCGgQU3m1bhKcGPSkT8tR2T+x6Y7N8tgEFJ6xhjUg1a9wuSzhM8PzRdu8kmFnAhIBR2FyZA=="
	ctx := context.Background()
	for _, c := range handlers {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
				r.AddAttrs(slog.String("request_id", "c0a80107-4f2a9e31"), slog.String("listener", "plain"),
					slog.String("method", "GET"), slog.String("path", path), slog.Int("status", 200),
					slog.Int64("bytes", 1458), slog.Float64("duration_ms", 0.082),
					slog.String("remote", "192.0.2.7:51234"))
				if err := c.h.Handle(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
