package storagetest

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ProxyMode is what a RedisProxy does with the traffic.
type ProxyMode int

const (
	// ProxyPass forwards everything.
	ProxyPass ProxyMode = iota
	// ProxyHang is a Redis stopped with SIGSTOP: connections are accepted
	// and stay open, nothing is answered; what was sent meanwhile is
	// delivered when the proxy passes again.
	ProxyHang
	// ProxyRefuse is a Redis that is down: open connections are reset,
	// new ones reset as soon as they are accepted.
	ProxyRefuse
)

// RedisProxy is a TCP proxy in front of the test Redis that a test can
// make hang or refuse connections, for outage tests that must not stop
// the Redis other tests share.
type RedisProxy struct {
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
func NewRedisProxy(t testing.TB) *RedisProxy {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: RedisAddr(), MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := rc.Ping(ctx).Err()
	cancel()
	rc.Close()
	if err != nil {
		ServiceMissing(t, "Redis at "+RedisAddr(), err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &RedisProxy{Addr: l.Addr().String(), l: l, upstream: RedisAddr(), conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Set switches the proxy to mode.
func (p *RedisProxy) Set(mode ProxyMode) {
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
func (p *RedisProxy) Accepted() int64 { return p.accepted.Load() }

func (p *RedisProxy) close() {
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

func (p *RedisProxy) accept() {
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

func (p *RedisProxy) serve(c net.Conn) {
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
func (p *RedisProxy) pipe(dst io.Writer, src io.Reader) {
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
