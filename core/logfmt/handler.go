// Package logfmt holds slog handlers that write the same bytes as
// slog.TextHandler and slog.JSONHandler, faster for the common record.
//
// A record whose level is one of DEBUG, INFO, WARN and ERROR and whose
// attributes — its own and those added with WithAttrs — are all strings of
// printable ASCII without '"' or '\\', integers, booleans, durations, times
// with a four-digit year, or floats (in JSON, zero or of a magnitude in
// [1e-6, 1e21), where encoding/json writes strconv's plain form), is
// formatted here into a pooled buffer. Every other record, and every
// record of a handler built with AddSource, ReplaceAttr or WithGroup, goes to
// a standard handler built with the same options and attributes, so the output
// is the standard one by construction; the fast path only has to agree with it
// on the simple cases, and the tests hold it to that.
//
// Both paths write each record with one Write call made under one mutex, so
// lines never interleave. logfmt does not buffer: batching is the writer's job.
package logfmt

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/strongroom-pki/strongroom/core"
)

// NewText returns a handler that writes what slog.NewTextHandler(w, opts)
// writes. A nil opts means the default options, as for slog.
func NewText(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return newHandler(w, opts, false)
}

// NewJSON returns a handler that writes what slog.NewJSONHandler(w, opts)
// writes. A nil opts means the default options, as for slog.
func NewJSON(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return newHandler(w, opts, true)
}

// handler formats simple records itself and hands the rest to std.
type handler struct {
	json bool
	// std is the standard handler with the same options, attributes and
	// groups; it writes through the same lockedWriter.
	std slog.Handler
	w   *lockedWriter
	// buffers holds line buffers and stamps the last time formatted, both
	// shared by all the handlers derived from one.
	buffers *sync.Pool
	stamps  *stamps
	// slow is set when no record can take the fast path: AddSource,
	// ReplaceAttr, a group, or an attribute from WithAttrs that the fast
	// path does not format.
	slow bool
	// pre holds the WithAttrs attributes as formatted, without a leading
	// separator; empty when there are none.
	pre []byte
}

func newHandler(w io.Writer, opts *slog.HandlerOptions, json bool) *handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	lw := &lockedWriter{w: w}
	h := &handler{json: json, w: lw, buffers: newBufferPool(), stamps: new(stamps), slow: opts.AddSource || opts.ReplaceAttr != nil}
	if json {
		h.std = slog.NewJSONHandler(lw, opts)
	} else {
		h.std = slog.NewTextHandler(lw, opts)
	}
	return h
}

// lockedWriter serialises the Write calls of both paths: the standard
// handler's own mutex covers only its own writes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Enabled reports what the standard handler reports.
func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.std.Enabled(ctx, level)
}

// Handle writes r as one line with one Write call.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	// A line written while serving a request says which (the request's
	// own event adds the id itself, with a context that lacks it).
	if id := core.RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if h.slow {
		return h.std.Handle(ctx, r)
	}
	bp := h.buffers.Get().(*[]byte)
	b, ok := h.appendRecord((*bp)[:0], r)
	*bp = b
	var err error
	if ok {
		_, err = h.w.Write(b)
	}
	if cap(b) <= maxBuffer {
		h.buffers.Put(bp)
	}
	if !ok {
		return h.std.Handle(ctx, r)
	}
	return err
}

// WithAttrs returns a handler with attrs added, preformatted when the fast
// path can format them all.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := &handler{json: h.json, w: h.w, buffers: h.buffers, stamps: h.stamps, slow: h.slow}
	if !h2.slow {
		pre := append([]byte(nil), h.pre...)
		for _, a := range attrs {
			var ok bool
			if pre, ok = h.appendAttr(pre, a, len(pre) > 0); !ok {
				h2.slow = true
				break
			}
		}
		if !h2.slow {
			h2.pre = pre
		}
	}
	// Formatted first: the standard handler owns the slice from here on.
	h2.std = h.std.WithAttrs(attrs)
	return h2
}

// WithGroup returns a handler whose records all go to the standard handler.
func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{json: h.json, w: h.w, buffers: h.buffers, stamps: h.stamps, slow: true, std: h.std.WithGroup(name)}
}

// maxBuffer is the largest line buffer kept for reuse; a larger one, from
// a rare long record, is left to the garbage collector, as slog does.
const maxBuffer = 16 << 10

func newBufferPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, 0, 512)
		return &b
	}}
}
