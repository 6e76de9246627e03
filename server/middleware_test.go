package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/core/logfmt"
)

func TestRequestIDsUniqueAndEchoed(t *testing.T) {
	s := New(Options{})
	s.MountPlain("/x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h := s.PlainHandler()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
				id := rec.Header().Get(RequestIDHeader)
				mu.Lock()
				if id == "" || seen[id] {
					t.Errorf("request id %q empty or repeated", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Another listener (another wrap) gets another prefix.
	rec := httptest.NewRecorder()
	s.HTTPSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	other := rec.Header().Get(RequestIDHeader)
	for id := range seen {
		if id[:12] == other[:12] {
			t.Fatalf("listeners share the id prefix: %q and %q", id, other)
		}
		break
	}
	// A client's id is kept; an over-long one is replaced.
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set(RequestIDHeader, "client-id-1")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get(RequestIDHeader); got != "client-id-1" {
		t.Fatalf("client request id: got %q", got)
	}
	req.Header.Set(RequestIDHeader, strings.Repeat("a", 65))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get(RequestIDHeader); len(got) > 64 || got == "" {
		t.Fatalf("over-long client id not replaced: %q", got)
	}
}

func TestRequestIDCounterGrows(t *testing.T) {
	g := newRequestIDs()
	if id := g.next(); len(id) != 21 || !strings.HasSuffix(id, "-00000001") {
		t.Fatalf("first id %q", id)
	}
	g.n.Store(1<<32 - 1)
	if id := g.next(); !strings.HasSuffix(id, "-100000000") {
		t.Fatalf("id past 32 bits %q", id)
	}
}

func TestMetricsAndOneLogEventPerRequest(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s := New(Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.MountPlain("/ocsp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/bad"):
			w.WriteHeader(http.StatusTeapot)
		case strings.HasSuffix(r.URL.Path, "/down"):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(r.URL.Path, "/broken"):
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	h := s.PlainHandler()
	for _, p := range []string{"/ocsp/a", "/ocsp/b", "/ocsp/bad", "/nowhere", "/ocsp/down", "/ocsp/broken"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	for _, tc := range []struct {
		fe, code string
		want     float64
	}{{"ocsp", "0", 2}, {"ocsp", "418", 1}, {"other", "404", 1}} {
		got := gathered(t, reg, "strongroom_http_requests_total", "http", tc.fe, tc.code)
		if got != tc.want {
			t.Errorf("requests{frontend=%s,code=%s} = %v, want %v", tc.fe, tc.code, got, tc.want)
		}
	}
	if n := gathered(t, reg, "strongroom_http_request_duration_seconds", "http", "ocsp", ""); n != 5 {
		t.Errorf("ocsp latency count %v, want 5", n)
	}
	// Only front ends that saw requests have series.
	if n := gathered(t, reg, "strongroom_http_request_duration_seconds", "http", "acme", ""); n != -1 {
		t.Errorf("acme latency series exists (count %v) without a request", n)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d log lines for 6 requests:\n%s", len(lines), logs.String())
	}
	// A 503 (something the node needs is down; every request alike) is a
	// warning, any other 5xx an error.
	if !strings.Contains(lines[4], "level=WARN") || !strings.Contains(lines[4], "status=503") ||
		!strings.Contains(lines[5], "level=ERROR") || !strings.Contains(lines[5], "status=500") {
		t.Errorf("levels of a 503 and a 500:\n%s\n%s", lines[4], lines[5])
	}
	for _, want := range []string{"msg=request", "listener=http", "method=GET", "path=/ocsp/bad", "status=418", "request_id=", "duration_ms=", "remote="} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("log line lacks %q: %s", want, lines[2])
		}
	}
}

// gathered returns the counter value or histogram count of the series with
// the given labels (code "" for none), or -1 when there is no such series.
func gathered(t *testing.T, reg *prometheus.Registry, name, listener, fe, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"listener": listener, "frontend": fe, "code": code}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	if h := m.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return m.GetCounter().GetValue()
}

// A line an application writes while serving a request carries the
// request's id (certificate issued, refused by policy, …), and the
// request's own event names it once.
func TestRequestIDInApplicationLogs(t *testing.T) {
	var buf syncBuf
	s := New(Options{Logger: slog.New(logfmt.NewJSON(&buf, nil))})
	s.Engine().GET("/x", func(c *gin.Context) {
		slog.New(logfmt.NewJSON(&buf, nil)).InfoContext(c.Request.Context(), "inner")
		c.Status(http.StatusNoContent)
	})
	rec := httptest.NewRecorder()
	s.HTTPSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	id := rec.Header().Get(RequestIDHeader)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the inner line and the request event, got:\n%s", buf.String())
	}
	for _, l := range lines {
		if strings.Count(l, `"request_id"`) != 1 || !strings.Contains(l, `"request_id":"`+id+`"`) {
			t.Errorf("line without request id %q once: %s", id, l)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The request event names the principal a front end authenticated, and
// nothing when none did.
func TestRequestEventNamesPrincipal(t *testing.T) {
	var buf syncBuf
	s := New(Options{Logger: slog.New(logfmt.NewJSON(&buf, nil))})
	s.Engine().GET("/who", func(c *gin.Context) {
		core.SetPrincipal(c.Request.Context(), "apikey:k1")
		c.Status(http.StatusNoContent)
	})
	s.Engine().GET("/anon", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	for path, want := range map[string]string{"/who": `"principal":"apikey:k1"`, "/anon": ""} {
		buf.mu.Lock()
		buf.b.Reset()
		buf.mu.Unlock()
		s.HTTPSHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
		line := buf.String()
		if want != "" && !strings.Contains(line, want) || want == "" && strings.Contains(line, "principal") {
			t.Errorf("GET %s: request event %s, want principal %q", path, line, want)
		}
	}
}

// TestRedactSecrets: an API key pasted into a path is not logged (found by
// a review: GET /api/v1/keys/srk_… logged the secret).
func TestRedactSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/keys":                       "/api/v1/keys",
		"/api/v1/keys/srk_abcDEF-_123":       "/api/v1/keys/srk_[redacted]",
		"/api/v1/keys/srk_abc/sign":          "/api/v1/keys/srk_[redacted]/sign",
		"/x/srk_a/y/Bearer%20srk_b":          "/x/srk_[redacted]/y/Bearer%20srk_[redacted]",
		"/ocsp/MEowSDBGMEQwQgYJKoZIhvcNAQEB": "/ocsp/MEowSDBGMEQwQgYJKoZIhvcNAQEB",
	} {
		if got := redactSecrets(in); got != want {
			t.Errorf("redactSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}
