package server

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// guard wraps a listener with what keeps one client from exhausting the
// process: a cap on the connections one address holds open (Options.
// ConnsPerIP), and a log line when accepting fails for want of file
// descriptors. Both are logged at most once a minute per listener.
func (s *Server) guard(l net.Listener, name string) net.Listener {
	return &guardedListener{Listener: l, log: s.log, name: name, max: s.opts.ConnsPerIP, open: map[string]int{}}
}

type guardedListener struct {
	net.Listener
	log  *slog.Logger
	name string
	max  int // ≤ 0: no cap

	mu             sync.Mutex
	open           map[string]int // connections held, by client address
	lastFD, lastIP time.Time
}

func (g *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				g.warn(&g.lastFD, "cannot accept connections: out of file descriptors (raise the open-files limit, or look for clients holding idle connections)", "err", err)
			}
			return nil, err // the callers back off and retry, as net/http does
		}
		if g.max <= 0 {
			return c, nil
		}
		ip := hostOf(c.RemoteAddr())
		g.mu.Lock()
		over := g.open[ip] >= g.max
		if !over {
			g.open[ip]++
		}
		g.mu.Unlock()
		if over {
			c.Close()
			g.warn(&g.lastIP, "refusing connections from a client over limits.conns_per_ip", "remote", ip, "limit", g.max)
			continue
		}
		return &countedConn{Conn: c, release: func() { g.release(ip) }}, nil
	}
}

func (g *guardedListener) release(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[ip]--; g.open[ip] <= 0 {
		delete(g.open, ip)
	}
}

// warn logs msg if the last one of its kind was a minute ago or more.
func (g *guardedListener) warn(last *time.Time, msg string, args ...any) {
	g.mu.Lock()
	due := time.Since(*last) >= time.Minute
	if due {
		*last = time.Now()
	}
	g.mu.Unlock()
	if due {
		g.log.Warn(msg, append([]any{"listener", g.name}, args...)...)
	}
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// countedConn gives its slot back once, on its first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
