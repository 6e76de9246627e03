package logfmt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair is one of our handlers and the standard handler it must match, each
// writing to its own buffer.
type pair struct {
	ours, std      slog.Handler
	ourOut, stdOut *bytes.Buffer
}

func newPair(json bool, opts *slog.HandlerOptions) *pair {
	p := &pair{ourOut: new(bytes.Buffer), stdOut: new(bytes.Buffer)}
	if json {
		p.ours, p.std = NewJSON(p.ourOut, opts), slog.NewJSONHandler(p.stdOut, opts)
	} else {
		p.ours, p.std = NewText(p.ourOut, opts), slog.NewTextHandler(p.stdOut, opts)
	}
	return p
}

func (p *pair) withAttrs(as []slog.Attr) *pair {
	// Each handler owns the slice it is given.
	return &pair{ours: p.ours.WithAttrs(clone(as)), std: p.std.WithAttrs(clone(as)), ourOut: p.ourOut, stdOut: p.stdOut}
}

func (p *pair) withGroup(name string) *pair {
	return &pair{ours: p.ours.WithGroup(name), std: p.std.WithGroup(name), ourOut: p.ourOut, stdOut: p.stdOut}
}

func clone(as []slog.Attr) []slog.Attr { return append([]slog.Attr(nil), as...) }

// handle gives r to both handlers and fails t unless they wrote the same
// bytes and returned the same error. It reports whether our handler took
// its fast path.
func (p *pair) handle(t *testing.T, r slog.Record) (fast bool) {
	t.Helper()
	p.ourOut.Reset()
	p.stdOut.Reset()
	ctx := context.Background()
	if oe, se := p.ours.Enabled(ctx, r.Level), p.std.Enabled(ctx, r.Level); oe != se {
		t.Fatalf("Enabled(%v) = %v, slog says %v", r.Level, oe, se)
	} else if !oe {
		return false
	}
	oerr, serr := p.ours.Handle(ctx, r.Clone()), p.std.Handle(ctx, r.Clone())
	if fmt.Sprint(oerr) != fmt.Sprint(serr) {
		t.Fatalf("Handle error %v, slog's %v", oerr, serr)
	}
	if !bytes.Equal(p.ourOut.Bytes(), p.stdOut.Bytes()) {
		t.Fatalf("record %v %q:\nours %q\nslog %q", r.Level, r.Message, p.ourOut.Bytes(), p.stdOut.Bytes())
	}
	if h := p.ours.(*handler); !h.slow {
		_, fast = h.appendRecord(nil, r)
	}
	return fast
}

// requestRecord is the event of server.Server.logRequest.
func requestRecord(t time.Time, level slog.Level, id, listener, method, path string, status int, bytes int64, d time.Duration, remote string) slog.Record {
	r := slog.NewRecord(t, level, "request", 0)
	r.AddAttrs(slog.String("request_id", id), slog.String("listener", listener),
		slog.String("method", method), slog.String("path", path), slog.Int("status", status),
		slog.Int64("bytes", bytes), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", remote))
	return r
}

func TestRequestEvent(t *testing.T) {
	now := time.Date(2025, 3, 9, 14, 5, 6, 789_123_456, time.UTC)
	paths := []string{
		"/ocsp/MFMwUTBPME0wSzAHBgUrDgMCGgQU3%2Fm1bhKcGPSkT8tR2T%2Bx6Y7N8tgEFJ6xhjUg1a9wuSzhM8PzRdu8kmFnAhIBR2Fy+bmFyZA==",
		"/ocsp/MFMwUTBPME0wSzAHBgUrDgMCGgQU+abc=",
		"/acme/new-order", "/", "/api/v1/certificates/01ab?x=1", "/with space", "",
	}
	for _, json := range []bool{false, true} {
		for _, path := range paths {
			for _, status := range []int{200, 404, 503} {
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelError
				}
				r := requestRecord(now, level, "a1b2c3d4e5f60718", "plain", "GET", path, status, 1234, 1234567*time.Nanosecond, "192.0.2.7:51234")
				p := newPair(json, nil)
				if !p.handle(t, r) {
					t.Errorf("json=%v path %q: request event took the slow path", json, path)
				}
			}
		}
	}
	// One line written out in full, so a reader can see the shape.
	var buf bytes.Buffer
	h := NewText(&buf, nil)
	r := requestRecord(now, slog.LevelInfo, "id1", "plain", "GET", "/ocsp/AB+c=", 200, 5, 1500*time.Microsecond, "[::1]:1")
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	want := `time=2025-03-09T14:05:06.789Z level=INFO msg=request request_id=id1 listener=plain method=GET path="/ocsp/AB+c=" status=200 bytes=5 duration_ms=1.5 remote=[::1]:1` + "\n"
	if buf.String() != want {
		t.Errorf("got  %q\nwant %q", buf.String(), want)
	}
}

// TestDifferential builds random records, handler options and handler
// chains, and requires our output to equal slog's byte for byte.
func TestDifferential(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(1, seed))
	g := &gen{rng: rng}
	// Most records go through long-lived handlers, as in a server, so that
	// the cached time stamps are hit as well as missed.
	roots := make([]*pair, 16)
	for i := range roots {
		roots[i] = newPair(i%2 == 1, g.opts())
	}
	var handled, fast int
	for i := 0; i < n; i++ {
		g.clean = rng.IntN(2) == 0
		p := roots[rng.IntN(len(roots))]
		if rng.IntN(4) == 0 {
			p = newPair(i%2 == 1, g.opts())
		}
		for range rng.IntN(4) {
			if rng.IntN(12) == 0 && !g.clean {
				p = p.withGroup(g.key())
			} else {
				p = p.withAttrs(g.attrs(rng.IntN(4)))
			}
		}
		r := g.record()
		if p.handle(t, r) {
			fast++
		}
		if p.ours.Enabled(context.Background(), r.Level) {
			handled++
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d records compared (%d written, %d on the fast path)", n, handled, fast)
	// The test means little if nearly everything falls back.
	if fast < handled/5 {
		t.Errorf("only %d of %d written records took the fast path", fast, handled)
	}
}

// gen draws records from a mix of simple and awkward values.
// When clean is set it draws only what the fast path formats, so that a good
// share of records exercise it.
type gen struct {
	rng   *rand.Rand
	clean bool
}

var (
	simpleStrings = []string{
		"a", "GET", "plain", "request", "ok", "x-y_z.w", "/ocsp/MFEwTzBN+MEswSTAJ=", "a=b", "hello world",
		"", " ", "=", "192.0.2.1:443", "[::1]:8443", "!#$%&'()*+,-./:;<>?@[]^_`{|}~", "0", "true", "null",
		"time", "level", "msg", "<b>&amp;</b>",
	}
	awkwardStrings = []string{
		`"`, `a"b`, `\`, `C:\path`, "tab\there", "line\nbreak", "cr\r", "\x00", "\x01\x1f", "\x7f",
		"é", "naïve café", "日本語", "\xff", "a\xc3", "\u2028", "\u2029", "\u00a0", "\u200b", "\ufeff",
		"emoji 🙂", "\u0085", "`\"'", "a\\=b",
	}
	floats = []float64{
		0, math.Copysign(0, -1), 1, -1, 1.5, -2.25, 0.1, 1e-7, 1e-6, 9.99e-7, 5e-324, 1e20, 1e21, 9.99e20,
		-1e21, 123456789.123456, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300,
		math.NaN(), math.Inf(1), math.Inf(-1), 1234.567, 100, 1e6, 1e15, 1e16, 123456789012345678,
	}
	zones = []*time.Location{
		time.UTC, time.FixedZone("IST", 5*3600+1800), time.FixedZone("", -8*3600), time.FixedZone("X", 0),
		time.FixedZone("odd", 3*3600+17*60+13), time.Local,
	}
)

func (g *gen) pick(ss []string) string { return ss[g.rng.IntN(len(ss))] }

// str is mostly simple, sometimes awkward, sometimes random bytes.
func (g *gen) str() string {
	if g.clean {
		return g.pick(simpleStrings)
	}
	switch n := g.rng.IntN(10); {
	case n < 6:
		return g.pick(simpleStrings)
	case n < 9:
		return g.pick(simpleStrings) + g.pick(awkwardStrings) + g.pick(simpleStrings)
	default:
		b := make([]byte, g.rng.IntN(8))
		for i := range b {
			b[i] = byte(g.rng.IntN(256))
		}
		return string(b)
	}
}

func (g *gen) key() string {
	if g.rng.IntN(8) == 0 && !g.clean {
		return g.str()
	}
	return g.pick([]string{"a", "k", "serial", "issuer", "request_id", "path", "msg", "time", "x.y", "k=v", "k v"})
}

func (g *gen) time() time.Time {
	switch g.rng.IntN(15) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now() // with a monotonic reading
	case 2:
		return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	case 3:
		return time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC)
	case 4:
		return time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, zones[g.rng.IntN(len(zones))])
	case 5:
		return time.Date(0, 1, 1, 0, 0, 0, g.rng.IntN(1e9), zones[g.rng.IntN(len(zones))])
	case 6, 7, 8:
		// A few seconds, many times over, in several zones.
		sec := []int64{1741529106, 1741529107, 4102444799, 0, -1}[g.rng.IntN(5)]
		ns := []int64{0, 1, 100_000, 999_999, 1_000_000, 120_000_000, 999_999_999, g.rng.Int64N(1e9)}[g.rng.IntN(8)]
		return time.Unix(sec, ns).In(zones[g.rng.IntN(len(zones))])
	}
	ns := g.rng.Int64N(4_000_000_000) * 1_000_000_000 // 1970 to 2096
	switch g.rng.IntN(4) {
	case 0: // whole seconds
	case 1:
		ns += g.rng.Int64N(1000) * 1_000_000
	case 2:
		ns += g.rng.Int64N(1_000_000) * 1000
	default:
		ns += g.rng.Int64N(1_000_000_000)
	}
	return time.Unix(0, ns).In(zones[g.rng.IntN(len(zones))])
}

type valuer struct{ v slog.Value }

func (v valuer) LogValue() slog.Value { return v.v }

type marshaler struct{}

func (marshaler) MarshalText() ([]byte, error) { return []byte("marshaled text"), nil }

func (g *gen) value(depth int) slog.Value {
	n := g.rng.IntN(16)
	if g.clean && n >= 11 && n <= 14 {
		n = 0
	}
	switch n {
	case 0, 1, 2, 3:
		return slog.StringValue(g.str())
	case 4:
		return slog.Int64Value(g.pick64([]int64{0, 1, -1, 200, 1 << 40, math.MaxInt64, math.MinInt64}))
	case 5:
		return slog.Uint64Value([]uint64{0, 7, math.MaxUint64, 1 << 63}[g.rng.IntN(4)])
	case 6, 7:
		return slog.Float64Value(floats[g.rng.IntN(len(floats))] * []float64{1, 1, -1, 1.0000001}[g.rng.IntN(4)])
	case 8:
		return slog.BoolValue(g.rng.IntN(2) == 0)
	case 9:
		return slog.DurationValue(time.Duration(g.pick64([]int64{0, 1, 999, 1500, 1_500_000, 61e9, -3e9, math.MaxInt64, math.MinInt64, g.rng.Int64()})))
	case 10:
		return slog.TimeValue(g.time())
	case 11:
		if depth < 2 {
			return slog.GroupValue(g.attrs(g.rng.IntN(3))...)
		}
		return slog.IntValue(1)
	case 12:
		if depth < 2 {
			return slog.AnyValue(valuer{g.value(depth + 1)})
		}
		return slog.IntValue(2)
	case 13:
		return slog.AnyValue([]any{errors.New("boom " + g.str()), []byte(g.str()), marshaler{}, nil, struct{ A int }{3}, map[string]int{"a": 1}, slog.LevelWarn}[g.rng.IntN(7)])
	case 14:
		return slog.Value{}
	default:
		return slog.IntValue(g.rng.IntN(1000))
	}
}

func (g *gen) pick64(xs []int64) int64 { return xs[g.rng.IntN(len(xs))] }

func (g *gen) attrs(n int) []slog.Attr {
	as := make([]slog.Attr, n)
	for i := range as {
		as[i] = slog.Attr{Key: g.key(), Value: g.value(0)}
		if !g.clean {
			switch g.rng.IntN(20) {
			case 0:
				as[i] = slog.Attr{} // elided
			case 1:
				as[i].Key = ""
			}
		}
	}
	return as
}

func (g *gen) level() slog.Level {
	if g.rng.IntN(10) == 0 && !g.clean {
		return slog.Level(g.rng.IntN(20) - 8)
	}
	return []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}[g.rng.IntN(4)]
}

func (g *gen) record() slog.Record {
	var pc uintptr
	if g.rng.IntN(2) == 0 {
		var pcs [1]uintptr
		runtime.Callers(1, pcs[:])
		pc = pcs[0]
	}
	msg := g.str()
	if g.rng.IntN(3) == 0 {
		msg = "request"
	}
	r := slog.NewRecord(g.time(), g.level(), msg, pc)
	r.AddAttrs(g.attrs(g.rng.IntN(9))...) // past slog's five inline attrs
	return r
}

func (g *gen) opts() *slog.HandlerOptions {
	n := g.rng.IntN(20)
	if g.clean && (n == 1 || n == 2) {
		n = 0
	}
	switch n {
	case 0:
		return nil
	case 1:
		return &slog.HandlerOptions{AddSource: true}
	case 2:
		return &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case "k":
				return slog.Attr{}
			case slog.MessageKey:
				a.Key = "message"
			case slog.TimeKey:
				return slog.Attr{}
			}
			return a
		}}
	case 3:
		lv := new(slog.LevelVar)
		lv.Set(g.level())
		return &slog.HandlerOptions{Level: lv}
	}
	return &slog.HandlerOptions{Level: g.level()}
}

func TestEnabled(t *testing.T) {
	lv := new(slog.LevelVar)
	for _, opts := range []*slog.HandlerOptions{nil, {}, {Level: slog.LevelDebug}, {Level: slog.LevelError + 2}, {Level: lv}} {
		for _, json := range []bool{false, true} {
			p := newPair(json, opts)
			for _, set := range []slog.Level{slog.LevelInfo, slog.LevelWarn - 1, slog.LevelDebug} {
				lv.Set(set)
				for l := slog.LevelDebug - 4; l <= slog.LevelError+4; l++ {
					if o, s := p.ours.Enabled(context.Background(), l), p.std.Enabled(context.Background(), l); o != s {
						t.Errorf("opts %+v: Enabled(%v) = %v, slog says %v", opts, l, o, s)
					}
				}
			}
		}
	}
}

// lineWriter records each Write. It takes no lock of its own: the race
// detector and the line checks below see whether the handler serialises.
type lineWriter struct{ writes [][]byte }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

// TestConcurrentWholeLines logs from many goroutines through one handler and
// its derivatives, mixing fast-path and fallback records, and requires every
// Write to be one whole line and every line to arrive.
func TestConcurrentWholeLines(t *testing.T) {
	const goroutines, each = 8, 400
	for _, json := range []bool{false, true} {
		w := new(lineWriter)
		var root slog.Handler = NewText(w, nil)
		if json {
			root = NewJSON(w, nil)
		}
		hs := []slog.Handler{root, root.WithAttrs([]slog.Attr{slog.String("node", "n1")}), root.WithGroup("g")}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
					r.AddAttrs(slog.String("id", fmt.Sprintf("#%d-%d#", g, i)), slog.String("path", "/ocsp/a+b="))
					if i%3 == 1 {
						r.AddAttrs(slog.String("odd", "tab\there")) // fallback
					}
					if err := hs[i%len(hs)].Handle(context.Background(), r); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if len(w.writes) != goroutines*each {
			t.Fatalf("json=%v: %d writes, want %d", json, len(w.writes), goroutines*each)
		}
		seen := make(map[string]bool)
		for _, line := range w.writes {
			if bytes.IndexByte(line, '\n') != len(line)-1 {
				t.Fatalf("json=%v: write is not one line: %q", json, line)
			}
			s := string(line)
			_, gi, _ := strings.Cut(s, "#")
			gi, _, _ = strings.Cut(gi, "#")
			if gi == "" || seen[gi] {
				t.Fatalf("json=%v: line %q twice", json, gi)
			}
			seen[gi] = true
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	for _, h := range []slog.Handler{NewText(failWriter{}, nil), NewJSON(failWriter{}, nil)} {
		fast := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
		slow := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
		slow.AddAttrs(slog.Any("err", errors.New("x")))
		for _, r := range []slog.Record{fast, slow} {
			if err := h.Handle(context.Background(), r); err == nil || err.Error() != "disk full" {
				t.Errorf("Handle = %v, want the writer's error", err)
			}
		}
	}
}

// The handlers are drop-in: a Logger over them behaves as over slog's.
func TestLogger(t *testing.T) {
	for _, json := range []bool{false, true} {
		p := newPair(json, &slog.HandlerOptions{Level: slog.LevelDebug})
		for _, h := range []slog.Handler{p.ours, p.std} {
			l := slog.New(h).With("serial", "01ab", "n", 3)
			l.Debug("issued", "issuer", "Root CA", "d", time.Second)
			l.WithGroup("db").Warn("slow query", "ms", 12.5)
		}
		o, s := p.ourOut.String(), p.stdOut.String()
		// Times differ between the two runs; compare what follows them.
		strip := func(s string) string {
			var out []string
			for _, l := range strings.Split(s, "\n") {
				if i := strings.Index(l, "level"); i >= 0 {
					l = l[i:]
				}
				out = append(out, l)
			}
			return strings.Join(out, "\n")
		}
		if strip(o) != strip(s) {
			t.Errorf("json=%v:\nours %s\nslog %s", json, o, s)
		}
	}
}
