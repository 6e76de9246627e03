package ocsp_test

import (
	"bufio"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
)

const benchConcurrency = 32

// nopCache never hits: every request needs a fresh signature.
type nopCache struct{}

func (nopCache) Get(context.Context, string) ([]byte, bool, error)        { return nil, false, nil }
func (nopCache) Put(context.Context, string, []byte, time.Duration) error { return nil }
func (nopCache) Delete(context.Context, ...string) error                  { return nil }

type benchSetup struct {
	addr  string // the plain listener, fast lane in front of net/http, as in ca serve
	paths []string
	keys  *fakeKeys
	r     *ocsp.Responder
	ca    *ocsptest.CA
}

func newBench(b *testing.B, cache ocsp.Cache, fastEntries int) *benchSetup {
	ca := ocsptest.NewCA(b, "bench CA", nil)
	status := &fakeStatus{certs: map[core.Serial]core.Certificate{}}
	keys := &fakeKeys{keys: map[string]crypto.Signer{}, t: b}
	r, err := ocsp.New(ocsp.Options{Issuers: []ocsp.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key}},
		Status: status, Keys: keys, Cache: cache, FastEntries: fastEntries})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Warm(context.Background()); err != nil {
		b.Fatal(err)
	}
	s := &benchSetup{addr: strings.TrimPrefix(serveLane(b, r), "http://"), keys: keys, r: r, ca: ca}
	leaf := ca.Leaf(b, "1", "", "")
	for i := 0; i < 1000; i++ {
		serial := core.SerialFromBig(big.NewInt(int64(1_000_000 + i)))
		status.set(core.Certificate{Serial: serial, IssuerID: "int", Status: core.StatusValid})
		leaf.SerialNumber = serial.Big()
		der, err := xocsp.CreateRequest(leaf, ca.Cert, &xocsp.RequestOptions{Hash: crypto.SHA1})
		if err != nil {
			b.Fatal(err)
		}
		s.paths = append(s.paths, "/ocsp/"+base64.StdEncoding.EncodeToString(der))
	}
	return s
}

// load sends n GETs over benchConcurrency keep-alive connections with a
// minimal HTTP/1.1 client (so the client costs little of the 2 cores) and
// returns responses per second.
func load(b *testing.B, addr string, paths []string, n int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchConcurrency)
	start := time.Now()
	for w := 0; w < benchConcurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 8192)
			var req []byte
			for i := w; ; i++ {
				if next.Add(1) > int64(n) {
					return
				}
				req = append(req[:0], "GET "...)
				req = append(req, paths[i%len(paths)]...)
				req = append(req, " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				if err := readResponse(br); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	d := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return float64(n) / d.Seconds()
}

func readResponse(br *bufio.Reader) error {
	length := -1
	status, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(status), "HTTP/1.1 200") {
		return fmt.Errorf("status %q", status)
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > 16 && strings.EqualFold(string(line[:15]), "Content-Length:") {
			length, _ = strconv.Atoi(strings.TrimSpace(string(line[15:])))
		}
	}
	if length < 0 {
		return fmt.Errorf("no Content-Length")
	}
	_, err = br.Discard(length)
	return err
}

// rawCreateResponse measures x/crypto/ocsp.CreateResponse with the
// responder's key and certificate at benchConcurrency goroutines.
func rawCreateResponse(b *testing.B, s *benchSetup, n int) float64 {
	key, _ := s.keys.ResponderKey(context.Background(), "int")
	cert := s.r.ResponderCert("int")
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < benchConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				now := time.Now()
				_, err := xocsp.CreateResponse(s.ca.Cert, cert, xocsp.Response{Status: xocsp.Good,
					SerialNumber: big.NewInt(now.UnixNano()), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour),
					Certificate: cert}, key)
				if err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkOCSP reports cached GETs/s and fresh-signature GETs/s over a
// real listener at concurrency 32, beside raw ocsp.CreateResponse/s with
// the same key in the same run. Goals: cached ≥ 60,000/s; fresh ≥ 60% of
// raw.
func BenchmarkOCSP(b *testing.B) {
	b.Run("cached-GET", func(b *testing.B) {
		s := newBench(b, storage.NewMemoryOCSPCache(0, 0, nil), 0)
		load(b, s.addr, s.paths, len(s.paths)) // warm the cache
		b.ResetTimer()
		rate := load(b, s.addr, s.paths, b.N)
		b.ReportMetric(rate, "resp/s")
		b.Logf("in-process: the Go load generator (32 keep-alive connections) runs in this process on the same cores, " +
			"so resp/s includes the client's own cost; scripts/bench-ocsp.sh measures ca serve with wrk in another process")
	})
	b.Run("fresh-GET", func(b *testing.B) {
		s := newBench(b, nopCache{}, -1) // no cache of any kind: every answer signed
		b.ResetTimer()
		fresh := load(b, s.addr, s.paths, b.N)
		raw := rawCreateResponse(b, s, b.N)
		b.ReportMetric(fresh, "resp/s")
		b.ReportMetric(raw, "raw-CreateResponse/s")
		b.ReportMetric(100*fresh/raw, "%-of-raw")
	})
}

// discardWriter is a reusable http.ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkCachedGETHandler is the responder's own cost for a cached GET
// (decode, parse, cache lookup, headers), without HTTP or the network: the
// part of BenchmarkOCSP/cached-GET this package controls.
func BenchmarkCachedGETHandler(b *testing.B) {
	s := newBench(b, storage.NewMemoryOCSPCache(0, 0, nil), 0)
	reqs := make([]*http.Request, len(s.paths))
	for i, p := range s.paths {
		reqs[i] = httptest.NewRequest("GET", p, nil)
		s.r.ServeHTTP(&discardWriter{h: http.Header{}}, reqs[i]) // warm the cache
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for i := 0; pb.Next(); i++ {
			clear(w.h)
			s.r.ServeHTTP(w, reqs[i%len(reqs)])
		}
	})
}
