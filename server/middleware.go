package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/core"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// statusWriter records the status and size written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// httpMetrics counts requests by listener, front end and status code.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strongroom_http_requests_total", Help: "HTTP requests by listener, front end and status code.",
		}, []string{"listener", "frontend", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strongroom_http_request_duration_seconds", Help: "HTTP request latency by listener and front end.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"listener", "frontend"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

// frontends are the bounded label set for metrics: the part of the URL
// space a path belongs to.
var frontends = [...]string{"/acme/", "/api/", "/ui", "/ocsp", "/crl/", "/issuers/", "/metrics", "/healthz", "/readyz"}

// frontend returns the index in frontends of path's front end, or
// len(frontends) for "other".
func frontend(path string) int {
	for i, p := range frontends {
		if len(path) >= len(p) && path[:len(p)] == p {
			return i
		}
	}
	return len(frontends)
}

func frontendLabel(i int) string {
	if i < len(frontends) {
		return frontends[i][1:]
	}
	return "other"
}

// listenerMetrics are one listener's series, resolved once: a label lookup
// per request (hashing three strings, a map read under a lock) costs more
// than the OCSP answer itself.
type listenerMetrics struct {
	m        *httpMetrics
	listener string
	// latency[fe] and counts[fe][code] are resolved on first use, so
	// /metrics lists only series that saw requests, as before.
	latency [len(frontends) + 1]atomic.Pointer[observerRef]
	counts  [len(frontends) + 1][600]atomic.Pointer[counterRef]
}

type (
	counterRef  struct{ prometheus.Counter }
	observerRef struct{ prometheus.Observer }
)

func (m *httpMetrics) forListener(listener string) *listenerMetrics {
	return &listenerMetrics{m: m, listener: listener}
}

// observe counts a request. Racing first uses of a series resolve the same
// series.
func (lm *listenerMetrics) observe(fe, code int, d time.Duration) {
	o := lm.latency[fe].Load()
	if o == nil {
		o = &observerRef{lm.m.latency.WithLabelValues(lm.listener, frontendLabel(fe))}
		lm.latency[fe].Store(o)
	}
	o.Observe(d.Seconds())
	if code < 0 || code >= len(lm.counts[fe]) {
		lm.m.requests.WithLabelValues(lm.listener, frontendLabel(fe), strconv.Itoa(code)).Inc()
		return
	}
	slot := &lm.counts[fe][code]
	c := slot.Load()
	if c == nil {
		c = &counterRef{lm.m.requests.WithLabelValues(lm.listener, frontendLabel(fe), strconv.Itoa(code))}
		slot.Store(c)
	}
	c.Inc()
}

// requestIDs makes ids unique to this process and listener without a
// random read per request: a random prefix fixed at start, then a counter.
type requestIDs struct {
	prefix [12]byte // hex of 6 random bytes
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	g := &requestIDs{}
	var b [6]byte
	rand.Read(b[:])
	hex.Encode(g.prefix[:], b[:])
	return g
}

// next returns "{prefix}-{counter}", the counter as at least 8 hex digits.
func (g *requestIDs) next() string {
	var buf [12 + 1 + 16]byte
	copy(buf[:], g.prefix[:])
	buf[12] = '-'
	n := g.n.Add(1)
	digits := 8
	for n>>(4*digits) != 0 {
		digits++
	}
	const hexDigits = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		buf[13+i] = hexDigits[n&0xf]
		n >>= 4
	}
	return string(buf[:13+digits])
}

// wrap applies request id, body limit, recover, metrics and the single log
// event per request to h.
func (s *Server) wrap(listener string, h http.Handler) http.Handler {
	ids := newRequestIDs()
	lm := s.metrics.forListener(listener)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 64 {
			id = ids.next()
		}
		// RequestIDHeader is in canonical form: skip Set's canonicalising.
		w.Header()[RequestIDHeader] = []string{id}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.BodyLimit)
		}
		sw := &statusWriter{ResponseWriter: w}
		ctx := r.Context() // the request event carries the id itself
		rctx, cancel := context.WithTimeout(core.WithRequestID(ctx, id), s.opts.RequestTimeout)
		defer cancel()
		r = r.WithContext(rctx)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "request_id", id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					WriteProblem(sw, Problem{Status: http.StatusInternalServerError, Detail: "internal error; request id " + id})
				}
			}
			d := time.Since(start)
			lm.observe(frontend(r.URL.Path), sw.status, d)
			s.logRequest(ctx, id, core.Principal(r.Context()), listener, r.Method, r.URL.EscapedPath(), sw.status, sw.bytes, d, r.RemoteAddr)
		}()
		h.ServeHTTP(sw, r)
	})
}

// logRequest writes the one log event of a request; principal is who made
// it, when a front end authenticated the caller (core.SetPrincipal). A 5xx
// is at ERROR, except a 503: something the node needs is down (the
// database, the HSM sealed), every request is refused alike, and the cause
// is logged apart (core.FailureLog, readiness), so those are at WARN.
// secretMark begins every Strongroom API key's secret (package api's
// keyPrefix, which secret scanners look for).
const secretMark = "srk_"

// redactSecrets is path with every path segment part that starts with an
// API key's secret mark replaced: a key pasted into a URL by mistake is
// not logged (found by a review).
func redactSecrets(path string) string {
	if !strings.Contains(path, secretMark) {
		return path
	}
	var b strings.Builder
	for {
		i := strings.Index(path, secretMark)
		if i < 0 {
			b.WriteString(path)
			return b.String()
		}
		b.WriteString(path[:i])
		b.WriteString(secretMark + "[redacted]")
		path = path[i+len(secretMark):]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = ""
		}
	}
}

// maxLoggedPath bounds the path a request's log event quotes.
const maxLoggedPath = 2048

func (s *Server) logRequest(ctx context.Context, id, principal, listener, method, path string, status int, bytes int64, d time.Duration, remote string) {
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	lh := s.log.Handler()
	if !lh.Enabled(ctx, level) {
		return
	}
	// The record goes to the handler directly, with no caller PC:
	// slog.Logger would walk the stack for a source location that is
	// always this line.
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	if len(path) > maxLoggedPath { // a 1 MB path is not a 1 MB log line
		path = strings.ToValidUTF8(path[:maxLoggedPath], "") + "…(" + strconv.Itoa(len(path)) + " bytes)"
	}
	path = redactSecrets(path)
	// The raw query is left out: it may carry tokens.
	rec.AddAttrs(slog.String("request_id", id), slog.String("listener", listener),
		slog.String("method", method), slog.String("path", path), slog.Int("status", status),
		slog.Int64("bytes", bytes), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", remote))
	if principal != "" {
		rec.AddAttrs(slog.String("principal", principal))
	}
	lh.Handle(ctx, rec)
}
