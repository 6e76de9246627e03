package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FastHandler answers GET and HEAD requests on the plain listener without
// net/http: the OCSP responder, whose cached answers are asked for tens of
// thousands of times a second. Whatever it declines is served by the
// handlers mounted with MountPlain.
type FastHandler interface {
	// AppendFast answers a GET of target (the request target exactly as
	// sent, starting with the mounted prefix, never with a query).
	// It appends the answer's header fields, each "Name: value\r\n", to hdr
	// and returns them with the status (200, or 304 when ifNoneMatch matches)
	// and the body. ok false declines; hdr is then ignored.
	AppendFast(hdr []byte, target, ifNoneMatch string) (out []byte, status int, body []byte, ok bool)
}

// The fast lane reads requests itself and answers those a FastHandler takes.
// The first request it does not answer — any method but GET and HEAD, a
// body, HTTP/1.0, an unusual or malformed header, a cache miss, a head
// larger than its buffer — hands the connection, with the bytes already
// read, to net/http for the rest of its life. So net/http decides every
// question of protocol the lane does not answer with certainty, and a
// client sees one HTTP server.
//
// Measured with wrk (scripts/bench-ocsp.sh): net/http alone manages about
// 45,000 minimal responses a second on this project's 2-core machine, the
// lane about 80,000; the per-request work of net/http (a Request, a Header
// map, a bufio.Writer, a goroutine handoff for the body) costs more than
// finding and writing a cached OCSP answer.
type fastLane struct {
	s       *Server
	fast    []fastRoute
	handoff *chanListener
	lm      *listenerMetrics
	ids     *requestIDs
	closing atomic.Bool
	// headerTimeout is the package's, read once when the lane starts (a
	// test changing the package's must not race a lane still serving).
	headerTimeout time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type fastRoute struct {
	prefix string
	h      FastHandler
}

// headBuf is the largest request head the lane reads; longer ones go to
// net/http (whose limit is 1 MiB).
const headBuf = 4 << 10

// headerTimeout bounds the wait for a new connection's first request
// head, and for the rest of any head once its first bytes arrived (a
// variable for tests).
var headerTimeout = 5 * time.Second

// shutdownWrite is how long a write may still take once the lane shuts
// down.
const shutdownWrite = time.Second

func (f *fastLane) serve(l net.Listener) error {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if f.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// As net/http: back off on temporary errors (EMFILE).
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !f.track(c, true) {
			c.Close()
			return nil
		}
		go f.serveConn(c)
	}
}

// track adds or removes a connection the lane serves; adding fails once
// the lane is closing.
func (f *fastLane) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		if f.closing.Load() {
			return false
		}
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		return true
	}
	delete(f.conns, c)
	f.wg.Done()
	return true
}

// shutdown stops accepting, wakes every connection waiting for a request
// (they close) and waits until the lane's connections are closed or handed
// to net/http, or ctx ends.
func (f *fastLane) shutdown(ctx context.Context, l net.Listener) {
	f.mu.Lock()
	f.closing.Store(true)
	for c := range f.conns {
		c.SetReadDeadline(time.Now())
		// A client that does not read its answers would hold a writer
		// for the write timeout, and the shutdown with it.
		c.SetWriteDeadline(time.Now().Add(shutdownWrite))
	}
	f.mu.Unlock()
	l.Close()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (f *fastLane) serveConn(c net.Conn) {
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			// As net/http does: a handler's panic costs its connection,
			// not the process.
			f.s.log.Error("panic serving request", "listener", "http", "remote", c.RemoteAddr().String(),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		if !handedOff {
			c.Close()
		}
		f.track(c, false)
	}()
	buf := make([]byte, 0, headBuf)
	var out, hdr []byte
	remote := c.RemoteAddr().String()
	var dl deadlines
	for answered := false; ; answered = true {
		// The deadline first, then the closing check: shutdown sets
		// closing, then wakes readers by moving their deadline, so a
		// reader that saw closing unset has its deadline moved after.
		// A new connection gets the header timeout for its first request,
		// as net/http's ReadHeaderTimeout: the idle timeout (minutes) is
		// for keep-alive between requests, and let connections that never
		// send a byte hold file descriptors until the process ran out.
		if len(buf) > 0 || !answered {
			dl.headStarted(c, f.headerTimeout)
		} else {
			dl.idle(c, f.s.opts.IdleTimeout)
		}
		if f.closing.Load() {
			return
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return
		}
		out = out[:0]
		closeAfter := false
		for len(buf) > 0 && !closeAfter {
			req, used, st := parseHead(buf)
			if st == headIncomplete {
				if len(buf) == cap(buf) {
					st = headHandoff
				} else {
					break
				}
			}
			if st == headHandoff {
				if f.flush(c, out, &dl) {
					handedOff = f.handOff(c, buf)
				}
				return
			}
			var ok bool
			out, hdr, ok = f.answer(out, hdr, &req, remote)
			if !ok {
				if f.flush(c, out, &dl) {
					handedOff = f.handOff(c, buf)
				}
				return
			}
			closeAfter = req.close
			buf = buf[:copy(buf, buf[used:])]
		}
		if !f.flush(c, out, &dl) || closeAfter {
			return
		}
	}
}

// flush writes the answers of one batch of requests.
func (f *fastLane) flush(c net.Conn, out []byte, dl *deadlines) bool {
	if len(out) == 0 {
		return true
	}
	if f.closing.Load() {
		c.SetWriteDeadline(time.Now().Add(shutdownWrite))
	} else {
		dl.write(c, f.s.opts.WriteTimeout)
	}
	_, err := c.Write(out)
	return err == nil
}

// deadlines moves a connection's deadlines lazily: idle and write
// deadlines of minutes need no precision finer than a second, and setting
// one per request (a timer change each) cost a few percent of the lane.
type deadlines struct {
	readSet, writeSet time.Time // when they were last set
	readShort         bool      // the read deadline is a header timeout
}

// slack is how stale a deadline may be: a sixteenth of the timeout, at
// most a second.
func slack(timeout time.Duration) time.Duration { return min(timeout/16, time.Second) }

func (d *deadlines) idle(c net.Conn, timeout time.Duration) {
	now := time.Now()
	if d.readShort || now.Sub(d.readSet) >= slack(timeout) {
		c.SetReadDeadline(now.Add(timeout))
		d.readSet, d.readShort = now, false
	}
}

// headStarted bounds the time to read the rest of a head from when its
// first bytes came, however slowly the others trickle in.
func (d *deadlines) headStarted(c net.Conn, timeout time.Duration) {
	if !d.readShort {
		now := time.Now()
		c.SetReadDeadline(now.Add(timeout))
		d.readSet, d.readShort = now, true
	}
}

func (d *deadlines) write(c net.Conn, timeout time.Duration) {
	if now := time.Now(); now.Sub(d.writeSet) >= slack(timeout) {
		c.SetWriteDeadline(now.Add(timeout))
		d.writeSet = now
	}
}

// handOff gives c to net/http with the bytes read but not answered.
func (f *fastLane) handOff(c net.Conn, pending []byte) bool {
	c.SetDeadline(time.Time{})
	pc := &prefixConn{Conn: c, pending: append([]byte(nil), pending...)}
	select {
	case f.handoff.ch <- pc:
		return true
	case <-f.handoff.done:
		return false
	}
}

// answer appends the response to req to out if a FastHandler takes it, with
// the log event and metrics every request gets. hdr is scratch space for
// the handler's header fields.
func (f *fastLane) answer(out, hdr []byte, req *fastRequest, remote string) ([]byte, []byte, bool) {
	start := time.Now()
	var h FastHandler
	for _, r := range f.fast {
		if len(req.target) >= len(r.prefix) && req.target[:len(r.prefix)] == r.prefix {
			h = r.h
			break
		}
	}
	if h == nil {
		return out, hdr, false
	}
	hdr, status, body, ok := h.AppendFast(hdr[:0], req.target, req.ifNoneMatch)
	switch {
	case !ok:
		return out, hdr, false
	case status == 200:
		out = append(out, "HTTP/1.1 200 OK\r\n"...)
	case status == 304:
		out = append(out, "HTTP/1.1 304 Not Modified\r\n"...)
	default:
		return out, hdr, false
	}
	out = append(out, hdr...)
	id := req.requestID
	if id == "" {
		id = f.ids.next()
	}
	out = append(out, "Date: "...)
	out = appendDate(out, start)
	out = append(out, "\r\nX-Request-Id: "...)
	out = append(out, id...)
	if req.close {
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(out, "\r\n\r\n"...)
	sent := 0
	if status == 200 && !req.head {
		out = append(out, body...)
		sent = len(body)
	}
	d := time.Since(start)
	f.lm.observe(frontend(req.target), status, d)
	method := "GET"
	if req.head {
		method = "HEAD"
	}
	f.s.logRequest(context.Background(), id, "", "http", method, req.target, status, int64(sent), d, remote)
	return out, hdr, true
}

// dateCache keeps the Date header of the current second.
var dateCache atomic.Pointer[dateLine]

type dateLine struct {
	sec int64
	b   []byte
}

func appendDate(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return append(b, d.b...)
	}
	d := &dateLine{sec: sec, b: t.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")}
	dateCache.Store(d)
	return append(b, d.b...)
}

// chanListener hands connections to net/http.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
