package server

import (
	"context"
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
	ready := errors.New("hsm sealed")
	s := New(Options{Ready: func(context.Context) error { return ready }})
	for _, tc := range []struct {
		err  error
		code int
	}{{ready, 503}, {nil, 200}} {
		ready = tc.err
		rec := httptest.NewRecorder()
		s.HTTPSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != tc.code {
			t.Fatalf("readyz with %v: %d, want %d", tc.err, rec.Code, tc.code)
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
