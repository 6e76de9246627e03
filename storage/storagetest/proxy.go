package storagetest

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ProxyMode is what a Proxy does with the traffic.
type ProxyMode int

const (
	// ProxyPass forwards everything.
	ProxyPass ProxyMode = iota
	// ProxyHang is a server stopped with SIGSTOP: connections are accepted
	// and stay open, nothing is answered; what was sent meanwhile is
	// delivered when the proxy passes again.
	ProxyHang
	// ProxyRefuse is a server that is down: open connections are reset,
	// new ones reset as soon as they are accepted.
	ProxyRefuse
)

// Proxy is a TCP proxy in front of the test Redis or PostgreSQL that a
// test can make hang or refuse connections, for outage tests that must not
// stop the servers other tests share.
type Proxy struct {
	// Addr is where clients connect.
	Addr string

	l        net.Listener
	upstream string
	accepted atomic.Int64

	mu     sync.Mutex
	cond   *sync.Cond
	mode   ProxyMode
	closed bool
	conns  map[net.Conn]struct{}
}

// NewRedisProxy starts a proxy to RedisAddr, closed at the end of the test.
// It skips the test (or fails it, see ServiceMissing) without Redis.
func NewRedisProxy(t testing.TB) *Proxy {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: RedisAddr(), MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := rc.Ping(ctx).Err()
	cancel()
	rc.Close()
	if err != nil {
		ServiceMissing(t, "Redis at "+RedisAddr(), err)
	}
	return newProxy(t, RedisAddr())
}

// NewPostgresProxy makes a fresh schema (as PostgresSchema) and starts a
// proxy to the test PostgreSQL; it returns the proxy and a DSN for the
// schema that connects through it. It skips the test (or fails it, see
// ServiceMissing) without PostgreSQL.
func NewPostgresProxy(t testing.TB) (*Proxy, string) {
	t.Helper()
	dsn := PostgresSchema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("NewPostgresProxy needs a URL DSN with a host, not %q", PostgresURL())
	}
	p := newProxy(t, u.Host)
	u.Host = p.Addr
	return p, u.String()
}

func newProxy(t testing.TB, upstream string) *Proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Set switches the proxy to mode.
func (p *Proxy) Set(mode ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	p.cond.Broadcast()
	if mode == ProxyRefuse {
		for c := range p.conns {
			reset(c)
		}
	}
}

// Accepted counts the client connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

func (p *Proxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cond.Broadcast()
	for c := range p.conns {
		c.Close()
	}
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		if p.closed || p.mode == ProxyRefuse {
			p.mu.Unlock()
			reset(c)
			continue
		}
		p.mu.Unlock()
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var once sync.Once
	done := func() {
		once.Do(func() {
			c.Close()
			up.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
		})
	}
	go func() { p.pipe(up, c); done() }()
	p.pipe(c, up)
	done()
}

// pipe copies src to dst, holding each chunk while the proxy hangs.
func (p *Proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.mode == ProxyHang && !p.closed {
				p.cond.Wait()
			}
			stop := p.closed || p.mode == ProxyRefuse
			p.mu.Unlock()
			if stop {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
