package challengetest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// HTTP01Server answers http-01 challenges on a loopback port:
// GET /.well-known/acme-challenge/<token> returns the key authorization set
// for the token, or 404.
type HTTP01Server struct {
	mu     sync.Mutex
	tokens map[string]string
	srv    *httptest.Server
}

// NewHTTP01Server starts an HTTP01Server on 127.0.0.1 and stops it when the
// test ends.
func NewHTTP01Server(t testing.TB) *HTTP01Server {
	t.Helper()
	s := &HTTP01Server{tokens: map[string]string{}}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

// SetToken serves keyAuth for token.
func (s *HTTP01Server) SetToken(token, keyAuth string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = keyAuth
}

// ClearToken stops serving token.
func (s *HTTP01Server) ClearToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}

// Addr is the server's host:port.
func (s *HTTP01Server) Addr() string { return s.srv.Listener.Addr().String() }

// Port is the server's port, for the validator's HTTPPort.
func (s *HTTP01Server) Port() int { return portOf(s.Addr()) }

// ServeHTTP serves the challenge path; it can also be mounted elsewhere.
func (s *HTTP01Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	s.mu.Lock()
	keyAuth, found := s.tokens[token]
	s.mu.Unlock()
	if !ok || !found || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write([]byte(keyAuth))
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
