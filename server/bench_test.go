package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPlainMiddleware is the per-request cost of the plain listener's
// middleware (request id, body limit, metrics, the text log event written
// to io.Discard) around a handler that writes a small body, without HTTP
// or the network.
func BenchmarkPlainMiddleware(b *testing.B) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := make([]byte, 1100)
	s.MountPlain("/ocsp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	h := s.PlainHandler()
	req := httptest.NewRequest("GET", "/ocsp/MFEwTzBNMEswSTAJBgUrDgMCGgUABBSgcHhcV4iobFpvlLcJHLWNKT4+DwQUyfaz9I0xJga+/HtI8g2kVqCunkgCEBHLRH5fhJKvQS89HFSRq4k=", nil)
	req.RemoteAddr = "127.0.0.1:54321"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}
