package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// frontend names the part of the URL space a path belongs to, a bounded
// label set for metrics.
func frontend(path string) string {
	for _, p := range []string{"/acme/", "/api/", "/ui", "/ocsp", "/crl/", "/issuers/", "/metrics", "/healthz", "/readyz"} {
		if len(path) >= len(p) && path[:len(p)] == p {
			return p[1:]
		}
	}
	return "other"
}

// wrap applies request id, body limit, recover, metrics and the single log
// event per request to h.
func (s *Server) wrap(listener string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 64 {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.BodyLimit)
		}
		sw := &statusWriter{ResponseWriter: w}
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
			fe := frontend(r.URL.Path)
			s.metrics.requests.WithLabelValues(listener, fe, strconv.Itoa(sw.status)).Inc()
			s.metrics.latency.WithLabelValues(listener, fe).Observe(time.Since(start).Seconds())
			level := slog.LevelInfo
			if sw.status >= 500 {
				level = slog.LevelError
			}
			// The raw query is left out: it may carry tokens.
			s.log.Log(r.Context(), level, "request", "request_id", id, "listener", listener,
				"method", r.Method, "path", r.URL.EscapedPath(), "status", sw.status, "bytes", sw.bytes,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
		}()
		h.ServeHTTP(sw, r)
	})
}
