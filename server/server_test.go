package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestPlainPathsReachHandlersUncleaned(t *testing.T) {
	s := New(Options{})
	var got string
	s.MountPlain("/ocsp/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.EscapedPath() }))
	path := "/ocsp/MFMwUTBPME0wSzAJBgUrDgMCGgUABBR//+a/b==//x=="
	rec := httptest.NewRecorder()
	s.PlainHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 || got != path {
		t.Fatalf("status %d, handler saw %q; want 200 and %q", rec.Code, got, path)
	}
	rec = httptest.NewRecorder()
	s.PlainHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/nothing", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown path: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	s := New(Options{})
	s.Engine().GET("/boom", func(*gin.Context) { panic("boom") })
	rec := httptest.NewRecorder()
	s.HTTPSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "request id") {
		t.Fatalf("panic: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get(RequestIDHeader) == "" {
		t.Fatal("no request id header")
	}
}

func TestBodyLimit(t *testing.T) {
	s := New(Options{BodyLimit: 1024})
	var readErr error
	s.MountPlain("/x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
	}))
	s.PlainHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", strings.NewReader(strings.Repeat("a", 2048))))
	var mbe *http.MaxBytesError
	if !errors.As(readErr, &mbe) {
		t.Fatalf("reading an over-long body: %v; want MaxBytesError", readErr)
	}
}

func TestReadyz(t *testing.T) {
	ready, degraded := errors.New("hsm sealed"), ""
	s := New(Options{Ready: func(context.Context) error { return ready }, Degraded: func() string { return degraded }})
	for _, tc := range []struct {
		err      error
		degraded string
		code     int
		status   string
	}{
		{ready, "", 503, "not ready"},
		{ready, "cannot sign", 503, "not ready"},
		{nil, "", 200, "ready"},
		// Degraded is a 200: a probe keeps the node, a person reads why.
		{nil, "cannot sign", 200, "degraded"},
	} {
		ready, degraded = tc.err, tc.degraded
		rec := httptest.NewRecorder()
		s.HTTPSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var body struct{ Status, Reason string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.code || body.Status != tc.status {
			t.Fatalf("readyz with %v, degraded %q: %d %+v, want %d %q", tc.err, tc.degraded, rec.Code, body, tc.code, tc.status)
		}
		if tc.status == "degraded" && body.Reason != tc.degraded {
			t.Fatalf("degraded reason %q, want %q", body.Reason, tc.degraded)
		}
	}
}

func TestUnknownACMEEndpoint(t *testing.T) {
	s := New(Options{})
	s.MountACME("default", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	for path, code := range map[string]int{"/acme/default/directory": 204, "/acme/other/directory": 404} {
		rec := httptest.NewRecorder()
		s.HTTPSHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != code {
			t.Errorf("%s: %d, want %d", path, rec.Code, code)
		}
	}
}
