package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures the listeners. Every zero value is documented.
type Options struct {
	// HTTPSAddr and HTTPAddr are listen addresses; empty disables that
	// listener (tests). Listeners may instead be passed to Serve.
	HTTPSAddr, HTTPAddr string
	// GetCertificate supplies the HTTPS server certificate. Required when
	// HTTPS is served.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs, when set, asks clients for a certificate issued by these
	// CAs (mTLS for the REST API, and renewal). It stays optional at the
	// TLS layer and is verified by the API, which needs clientAuth for a
	// login but accepts a serverAuth-only certificate for its renewal.
	ClientCAs *x509.CertPool
	// BodyLimit caps request bodies. Zero means 64 KiB.
	BodyLimit int64
	// ReadTimeout, WriteTimeout, IdleTimeout bound each connection. Zero
	// means 15s, 30s, 120s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// RequestTimeout is the deadline of each request's context: what a
	// handler still waits on when it passes (a database or Redis that
	// stopped answering) gives up, and the client gets a 503 while the
	// connection can still carry it. Zero means two thirds of
	// WriteTimeout.
	RequestTimeout time.Duration
	// ConnsPerIP caps the connections one client address holds open on
	// each listener; past it new ones are closed at once. Zero or
	// negative: no cap.
	ConnsPerIP int
	// Ready reports whether the node can serve (HSM unsealed, database
	// reachable). Nil means always ready.
	Ready func(ctx context.Context) error
	// Degraded, when the node is ready, names what it cannot do although
	// it serves ("" nothing): /readyz still answers 200, with status
	// "degraded" and this reason. Nil means never degraded.
	Degraded func() string
	// Registry receives the HTTP metrics and is served at /metrics. Nil
	// means a new registry.
	Registry *prometheus.Registry
	// Logger receives one event per request. Nil discards.
	Logger *slog.Logger
}

// Server holds the two listeners' handlers. Mount front ends, then Serve.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *httpMetrics
	engine  *gin.Engine

	mu    sync.RWMutex
	plain []prefixRoute
	fast  []fastRoute
	acme  map[string]http.Handler
	// unmatchedBy answers unrouted requests under a prefix (Unmatched);
	// set before serving.
	unmatchedBy []unmatchedHandler
}

type prefixRoute struct {
	prefix string
	h      http.Handler
}

// New builds a Server.
func New(opts Options) *Server {
	if opts.BodyLimit == 0 {
		opts.BodyLimit = 64 << 10
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 15 * time.Second
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = opts.WriteTimeout * 2 / 3
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.UseRawPath = true
	e.UnescapePathValues = false
	s := &Server{opts: opts, log: log, metrics: newHTTPMetrics(opts.Registry), engine: e, acme: map[string]http.Handler{}}
	e.NoRoute(func(c *gin.Context) {
		if h := s.unmatched(c); h != nil {
			h(c, http.StatusNotFound)
			return
		}
		WriteProblem(c.Writer, Problem{Status: http.StatusNotFound, Detail: "no such resource: " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		if h := s.unmatched(c); h != nil {
			h(c, http.StatusMethodNotAllowed)
			return
		}
		WriteProblem(c.Writer, Problem{Status: http.StatusMethodNotAllowed, Detail: c.Request.Method + " is not allowed here"})
	})
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.Any("/acme/:name/*rest", s.serveACME)
	return s
}

// Unmatched answers the requests under prefix that match no route (404) or
// none for their method (405) with h, instead of a problem document: the
// console answers its own pages, with its headers.
func (s *Server) Unmatched(prefix string, h func(c *gin.Context, status int)) {
	s.unmatchedBy = append(s.unmatchedBy, unmatchedHandler{prefix, h})
}

type unmatchedHandler struct {
	prefix string
	h      func(c *gin.Context, status int)
}

func (s *Server) unmatched(c *gin.Context) func(c *gin.Context, status int) {
	for _, u := range s.unmatchedBy {
		if p := c.Request.URL.Path; p == strings.TrimSuffix(u.prefix, "/") || strings.HasPrefix(p, u.prefix) {
			return u.h
		}
	}
	return nil
}

// Engine is the HTTPS gin engine, for mounting the API and console.
func (s *Server) Engine() *gin.Engine { return s.engine }

// MetricsHandler serves the registry to Prometheus; the caller mounts it
// behind authentication (api.RegisterMetrics).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})
}

// Registry is the metrics registry served at /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.opts.Registry }

// MountACME serves h for every path under /acme/{name}/.
func (s *Server) MountACME(name string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acme[name] = h
}

func (s *Server) serveACME(c *gin.Context) {
	s.mu.RLock()
	h := s.acme[c.Param("name")]
	s.mu.RUnlock()
	if h == nil {
		WriteProblem(c.Writer, Problem{Status: http.StatusNotFound, Detail: "no ACME endpoint named " + c.Param("name")})
		return
	}
	h.ServeHTTP(c.Writer, c.Request)
}

// MountPlain serves h on the plain HTTP listener for every path starting
// with prefix. The path reaches h exactly as sent (not cleaned).
func (s *Server) MountPlain(prefix string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plain = append(s.plain, prefixRoute{prefix, h})
}

// MountFast lets h answer GET and HEAD requests for paths starting with
// prefix on the plain listener before net/http sees them (see FastHandler);
// what h declines goes to the handler mounted with MountPlain. Mount before
// Serve.
func (s *Server) MountFast(prefix string, h FastHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fast = append(s.fast, fastRoute{prefix, h})
}

// PlainHandler is the plain-HTTP listener's handler, with middleware.
func (s *Server) PlainHandler() http.Handler {
	return s.wrap("http", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		s.mu.RLock()
		var h http.Handler
		for _, pr := range s.plain {
			if strings.HasPrefix(path, pr.prefix) {
				h = pr.h
				break
			}
		}
		s.mu.RUnlock()
		switch {
		case h != nil:
			h.ServeHTTP(w, r)
		case path == "/healthz":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":"ok"}`+"\n")
		default:
			WriteProblem(w, Problem{Status: http.StatusNotFound, Detail: "no such resource: " + path})
		}
	}))
}

// HTTPSHandler is the HTTPS listener's handler, with middleware.
func (s *Server) HTTPSHandler() http.Handler { return s.wrap("https", headAsGet(s.engine)) }

// headAsGet answers HEAD wherever GET is answered (RFC 9110 §9.3.2): gin
// routes only the methods registered, so HEAD of an API resource was a
// 405. The handler runs as GET on a copy of the request; net/http discards
// the body because its own request is still HEAD. ACME routes HEAD itself
// (newNonce, RFC 8555 §7.2).
func headAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && !strings.HasPrefix(r.URL.Path, "/acme/") {
			g := r.Clone(r.Context())
			g.Method = http.MethodGet
			h.ServeHTTP(w, g)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) readyz(c *gin.Context) {
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	if s.opts.Degraded != nil {
		if d := s.opts.Degraded(); d != "" {
			c.JSON(http.StatusOK, gin.H{"status": "degraded", "reason": d})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// tls12Suites are the TLS 1.2 cipher suites offered: forward-secret AEAD
// only (Mozilla's "intermediate" set). Go's defaults also accept the
// CBC-SHA1 suites, which a security review found; TLS 1.3 suites are not
// configurable and all AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig is the HTTPS listener's TLS configuration.
func (s *Server) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   tls12Suites,
		GetCertificate: s.opts.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if s.opts.ClientCAs != nil {
		cfg.ClientCAs = s.opts.ClientCAs
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg
}

// Serve listens on the configured addresses and serves until ctx ends, then
// shuts down gracefully (in-flight requests get 10 seconds).
func (s *Server) Serve(ctx context.Context) error {
	var https, plain net.Listener
	var err error
	if s.opts.HTTPSAddr != "" {
		if https, err = net.Listen("tcp", s.opts.HTTPSAddr); err != nil {
			return fmt.Errorf("listening for HTTPS: %w", err)
		}
	}
	if s.opts.HTTPAddr != "" {
		if plain, err = net.Listen("tcp", s.opts.HTTPAddr); err != nil {
			if https != nil {
				https.Close()
			}
			return fmt.Errorf("listening for HTTP: %w", err)
		}
	}
	return s.ServeListeners(ctx, https, plain)
}

// ServeListeners serves on already-open listeners (either may be nil).
func (s *Server) ServeListeners(ctx context.Context, https, plain net.Listener) error {
	if https != nil {
		https = s.guard(https, "https")
	}
	if plain != nil {
		plain = s.guard(plain, "http")
	}
	var servers []*http.Server
	errc := make(chan error, 3)
	start := func(srv *http.Server, l net.Listener, tlsOn bool) {
		servers = append(servers, srv)
		go func() {
			var err error
			if tlsOn {
				err = srv.ServeTLS(l, "", "")
			} else {
				err = srv.Serve(l)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	if https != nil {
		start(&http.Server{Handler: s.HTTPSHandler(), TLSConfig: s.TLSConfig(), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: s.opts.ReadTimeout, WriteTimeout: s.opts.WriteTimeout, IdleTimeout: s.opts.IdleTimeout, ErrorLog: errLog}, https, true)
	}
	var lane *fastLane
	if plain != nil {
		// The plain listener's connections go through the fast lane, which
		// hands net/http what it does not answer itself.
		s.mu.RLock()
		lane = &fastLane{s: s, fast: append([]fastRoute(nil), s.fast...), handoff: newChanListener(plain.Addr()), headerTimeout: headerTimeout,
			lm: s.metrics.forListener("http"), ids: newRequestIDs(), conns: map[net.Conn]struct{}{}}
		s.mu.RUnlock()
		start(&http.Server{Handler: s.PlainHandler(), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: s.opts.ReadTimeout, WriteTimeout: s.opts.WriteTimeout, IdleTimeout: s.opts.IdleTimeout, ErrorLog: errLog}, lane.handoff, false)
		go func() {
			if err := lane.serve(plain); err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Every listener stops accepting at once and drains in parallel: one
	// after another, a slow client of the first used up the grace period
	// while the HTTPS listener kept issuing (found by a review: 10 s and
	// ~7,000 more certificates after SIGTERM).
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if lane != nil {
		wg.Go(func() { lane.shutdown(sctx, plain) })
	}
	for _, srv := range servers {
		wg.Go(func() { srv.Shutdown(sctx) })
	}
	wg.Wait()
	return err
}
