package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/http/httpguts"
)

// fakeFast answers GET /fast/{name} for the names it holds.
type fakeFast struct {
	bodies map[string]string
}

func (f *fakeFast) AppendFast(hdr []byte, target, inm string) ([]byte, int, []byte, bool) {
	if target == "/fast/panic" {
		panic("fake handler failure")
	}
	body, ok := f.bodies[strings.TrimPrefix(target, "/fast/")]
	if !ok {
		return hdr, 0, nil, false
	}
	etag := `"` + target + `"`
	hdr = append(hdr, "Content-Type: text/plain\r\nEtag: "+etag+"\r\n"...)
	if inm != "" && strings.Contains(inm, etag) {
		return hdr, 304, nil, true
	}
	hdr = append(hdr, "Content-Length: "+strconv.Itoa(len(body))+"\r\n"...)
	return hdr, 200, []byte(body), true
}

// laneFixture serves the plain listener with a fast handler for /fast/ and
// an ordinary one that answers "slow {method} {path} {body}".
type laneFixture struct {
	srv    *Server
	addr   string
	slow   atomic.Int64
	logs   *recordingHandler
	cancel context.CancelFunc
	done   chan error
}

type recordingHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// requests returns the attributes of the "request" events logged so far.
func (h *recordingHandler) requests() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.recs {
		if r.Message != "request" {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

func newLaneFixture(t *testing.T, idle time.Duration) *laneFixture {
	t.Helper()
	f := &laneFixture{logs: &recordingHandler{}, done: make(chan error, 1)}
	f.srv = New(Options{Logger: slog.New(f.logs), IdleTimeout: idle})
	f.srv.MountPlain("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.slow.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "slow %s %s %s", r.Method, r.RequestURI, b)
	}))
	f.srv.MountFast("/fast/", &fakeFast{bodies: map[string]string{"a": "alpha", "b": "bravo"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.srv.ServeListeners(ctx, nil, l) }()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	return f
}

func (f *laneFixture) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func TestFastLaneAnswersAndHandsOff(t *testing.T) {
	f := newLaneFixture(t, 0)
	c, br := f.dial(t)
	// Two answers the lane holds, pipelined in one write, then one it does
	// not hold, then a POST with a body: net/http takes the connection over
	// at the miss and serves the rest of it.
	io.WriteString(c, "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\nGET /fast/b HTTP/1.1\r\nhost: x\r\nX-Request-Id: mine-1\r\n\r\n"+
		"GET /fast/zzz HTTP/1.1\r\nHost: x\r\n\r\nPOST /fast/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
	for _, want := range []string{"alpha", "bravo", "slow GET /fast/zzz ", "slow POST /fast/a body"} {
		resp, body := readResp(t, br, "GET")
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
		}
		if resp.Header.Get("Date") == "" || resp.Header.Get(RequestIDHeader) == "" {
			t.Fatalf("response to %q lacks Date or X-Request-Id: %v", want, resp.Header)
		}
		if want == "bravo" && resp.Header.Get(RequestIDHeader) != "mine-1" {
			t.Fatalf("request id not echoed: %v", resp.Header)
		}
	}
	if n := f.slow.Load(); n != 2 {
		t.Fatalf("ordinary handler served %d requests, want 2", n)
	}
	// A hit after the hand-off is served by net/http (the lane let go).
	io.WriteString(c, "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := readResp(t, br, "GET"); body != "slow GET /fast/a " {
		t.Fatalf("after hand-off got %q", body)
	}
	// One log event and one metric per request, whichever path served it.
	reqs := f.logs.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d request events, want 5: %v", len(reqs), reqs)
	}
	if r := reqs[0]; r["path"] != "/fast/a" || r["status"] != "200" || r["method"] != "GET" || r["bytes"] != "5" || r["listener"] != "http" {
		t.Fatalf("fast lane event: %v", r)
	}
	var m dto.Metric
	f.srv.metrics.requests.WithLabelValues("http", "other", "200").Write(&m)
	if got := m.GetCounter().GetValue(); got != 5 {
		t.Fatalf("requests_total{code=200} = %v, want 5", got)
	}
}

func TestFastLaneHeadConditionalClose(t *testing.T) {
	f := newLaneFixture(t, 0)
	c, br := f.dial(t)
	io.WriteString(c, "HEAD /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := readResp(t, br, "HEAD")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
	io.WriteString(c, "GET /fast/a HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"/fast/a\"\r\n\r\n")
	resp, body = readResp(t, br, "GET")
	if resp.StatusCode != 304 || body != "" || resp.Header.Get("Etag") != `"/fast/a"` {
		t.Fatalf("conditional GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	io.WriteString(c, "GET /fast/b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n")
	resp, body = readResp(t, br, "GET")
	if resp.StatusCode != 200 || body != "bravo" || !resp.Close {
		t.Fatalf("Connection: close: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection still open after Connection: close (%v)", err)
	}
	if f.slow.Load() != 0 {
		t.Fatal("the ordinary handler served a request the lane holds")
	}
}

// Whatever the lane cannot answer with certainty gets net/http's answer.
func TestFastLaneLeavesProtocolToNetHTTP(t *testing.T) {
	f := newLaneFixture(t, 0)
	long := "GET /fast/a HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("y", headBuf) + "\r\n\r\n"
	for _, tc := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"no host", "GET /fast/a HTTP/1.1\r\n\r\n", 400, ""},
		{"bad host", "GET /fast/a HTTP/1.1\r\nHost: a b\r\n\r\n", 400, ""},
		{"two hosts", "GET /fast/a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, ""},
		{"space before colon", "GET /fast/a HTTP/1.1\r\nHost : x\r\n\r\n", 400, ""},
		{"bad version", "GET /fast/a HTTP/9.9\r\nHost: x\r\n\r\n", 505, ""},
		{"HTTP/1.0", "GET /fast/a HTTP/1.0\r\n\r\n", 200, "slow GET /fast/a "},
		{"bare LF", "GET /fast/a HTTP/1.1\nHost: x\n\n", 200, "slow GET /fast/a "},
		{"query", "GET /fast/a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "slow GET /fast/a?x=1 "},
		{"absolute form", "GET http://x/fast/a HTTP/1.1\r\nHost: x\r\n\r\n", 200, "slow GET http://x/fast/a "},
		{"upgrade", "GET /fast/a HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", 200, "slow GET /fast/a "},
		{"chunked body", "GET /fast/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, "slow GET /fast/a abc"},
		{"head over the lane's buffer", long, 200, "slow GET /fast/a "},
		{"obs-fold", "GET /fast/a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\n\r\n", 200, "slow GET /fast/a "},
		{"control char in value", "GET /fast/a HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := f.dial(t)
			io.WriteString(c, tc.req)
			resp, body := readResp(t, br, "GET")
			if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

func TestFastLaneRequestInPieces(t *testing.T) {
	f := newLaneFixture(t, 0)
	c, br := f.dial(t)
	req := "GET /fast/b HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := range len(req) {
		c.Write([]byte{req[i]})
		time.Sleep(time.Millisecond)
	}
	if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "bravo" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if f.slow.Load() != 0 {
		t.Fatal("a request sent in pieces left the lane")
	}
}

func TestFastLaneIdleTimeoutAndShutdown(t *testing.T) {
	f := newLaneFixture(t, 200*time.Millisecond)
	c, br := f.dial(t)
	io.WriteString(c, "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, br, "GET")
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}

	// Shutdown closes connections waiting for a request and returns.
	c2, br2 := f.dial(t)
	io.WriteString(c2, "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, br2, "GET")
	f.cancel()
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("ServeListeners did not return after cancel")
	}
	if _, err := br2.ReadByte(); err != io.EOF {
		t.Fatalf("connection open after shutdown: %v", err)
	}
}

// A panicking handler costs its connection, is logged, and the lane serves on.
func TestFastLanePanic(t *testing.T) {
	f := newLaneFixture(t, 0)
	c, br := f.dial(t)
	io.WriteString(c, "GET /fast/panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection after a panic: %v", err)
	}
	c2, br2 := f.dial(t)
	io.WriteString(c2, "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := readResp(t, br2, "GET"); body != "alpha" {
		t.Fatalf("after a panic got %q", body)
	}
	f.logs.mu.Lock()
	defer f.logs.mu.Unlock()
	for _, r := range f.logs.recs {
		if r.Message == "panic serving request" {
			return
		}
	}
	t.Fatal("the panic was not logged")
}

// A head that trickles in is cut off headerTimeout after its first byte,
// however often bytes keep coming.
func TestFastLaneSlowHead(t *testing.T) {
	old := headerTimeout
	headerTimeout = 300 * time.Millisecond
	t.Cleanup(func() { headerTimeout = old }) // after the fixture's own cleanup has stopped the lane
	f := newLaneFixture(t, 0)
	c, br := f.dial(t)
	start := time.Now()
	go func() {
		for range 100 {
			if _, err := c.Write([]byte("G")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("slow head: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("slow head cut off after %v", d)
	}
}

// A head the lane takes must be one net/http reads the same way.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /ocsp/MEow+/= HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIf-None-Match: \"e\"\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n\r\nGET / HTTP/1.1\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, used, st := parseHead(b)
		if st != headComplete {
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:used])))
		if err != nil {
			t.Fatalf("lane took %q; net/http refuses it: %v", b[:used], err)
		}
		if hr.Method != map[bool]string{false: "GET", true: "HEAD"}[req.head] || hr.RequestURI != req.target ||
			hr.Close != req.close || hr.ContentLength != 0 || hr.Header.Get("If-None-Match") != req.ifNoneMatch ||
			len(hr.Header["Host"]) != 0 || !httpguts.ValidHostHeader(hr.Host) {
			t.Fatalf("lane read %q as %+v; net/http as %s %s close=%v length=%d inm=%q", b[:used], req,
				hr.Method, hr.RequestURI, hr.Close, hr.ContentLength, hr.Header.Get("If-None-Match"))
		}
	})
}

// A new connection that sends nothing is closed after the header timeout,
// not the (long) idle timeout: silent connections held file descriptors
// until the process ran out of them (found by a review: 20,000 idle
// connections stopped both listeners).
func TestFastLaneSilentConnection(t *testing.T) {
	old := headerTimeout
	headerTimeout = 300 * time.Millisecond
	t.Cleanup(func() { headerTimeout = old }) // after the fixture's own cleanup has stopped the lane
	f := newLaneFixture(t, time.Hour)
	_, br := f.dial(t)
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("silent connection: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("silent connection closed after %v, want the header timeout", d)
	}
}

// A client that pipelines requests and never reads the answers does not
// hold the shutdown for the write timeout.
func TestFastLaneShutdownWithStuckReader(t *testing.T) {
	f := newLaneFixture(t, 0)
	c, _ := f.dial(t)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	go func() {
		req := []byte(strings.Repeat("GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n", 64))
		for {
			if _, err := c.Write(req); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // the lane's writes block on the full socket
	start := time.Now()
	f.cancel()
	select {
	case err := <-f.done:
		f.done <- err
	case <-time.After(8 * time.Second):
		t.Fatal("shutdown waited for a client that does not read")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}
