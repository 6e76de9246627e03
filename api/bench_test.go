package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core/logfmt"
	"github.com/strongroom-pki/strongroom/server"
)

// BenchmarkIssueHTTP issues certificates through the REST API as ca serve
// runs it — the server package's HTTPS listener (TLS 1.3, HTTP/1.1
// keep-alive connections, one log line per request written to a file,
// request metrics), the full pipeline (policy, zlint, HSM-style signer,
// verification) and every certificate durably stored in SQLite — with a
// P-256 intermediate, at concurrency 1, 8 and 32, beside the raw rate of
// x509.CreateCertificate with the same key measured in the same run on all
// cores:
//
//	go test -run - -bench IssueHTTP -benchtime 2000x ./api
func BenchmarkIssueHTTP(b *testing.B) {
	e := newEnv(b, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := jsonBody(b, map[string]any{"csr": pemCSR(newCSR(b, k, "", "bench.corp.internal", "10.9.9.9"))})
	resp, out := e.do(b, "POST", "/certificates", "issuer", "application/json", body)
	if resp.StatusCode != 201 {
		b.Fatalf("warm-up issue: %d %s", resp.StatusCode, out)
	}
	var cr CertificateResponse
	json.Unmarshal(out, &cr)
	tmpl, err := x509.ParseCertificate(pemBlock(cr.Certificate))
	if err != nil {
		b.Fatal(err)
	}
	var raw float64
	b.Run("raw-CreateCertificate", func(b *testing.B) {
		var serial atomic.Int64
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			t := *tmpl
			for pb.Next() {
				t.SerialNumber = big.NewInt(serial.Add(1))
				if _, err := x509.CreateCertificate(rand.Reader, &t, e.inter.Certificate(), tmpl.PublicKey, e.inter.Signer()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		raw = float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(raw, "certs/s")
	})
	url, roots := e.serveHTTPS(b)
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64,
		TLSClientConfig: &tls.Config{RootCAs: roots}}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	for _, conc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("http-c%d", conc), func(b *testing.B) {
			before := e.count(b, "valid")
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for g := 0; g < conc; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := post(client, url+"/api/v1/certificates", e.keys["issuer"], body); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "certs/s")
			if raw > 0 {
				b.ReportMetric(100*rate/raw, "%raw")
			}
			if got := e.count(b, "valid") - before; got != b.N {
				b.Fatalf("%d certificates stored for %d requests", got, b.N)
			}
			b.Logf("concurrency %2d: %7.0f certs/s through HTTP = %4.1f%% of raw x509.CreateCertificate %7.0f/s", conc, rate, 100*rate/raw, raw)
		})
	}
}

func post(c *http.Client, url, key string, body []byte) error {
	req, _ := http.NewRequest("POST", url, bytesReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	drain(resp)
	if resp.StatusCode != 201 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// serveHTTPS serves the API through the server package's HTTPS listener, as
// ca serve does, logging each request to a file, and returns its URL and
// the roots that verify it.
func (e *env) serveHTTPS(b *testing.B) (string, *x509.CertPool) {
	cert, roots := e.serverCert(b)
	f, err := os.Create(filepath.Join(b.TempDir(), "requests.log"))
	if err != nil {
		b.Fatal(err)
	}
	s := server.New(server.Options{Logger: slog.New(logfmt.NewText(f, nil)),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }})
	e.api.Register(s.Engine().Group("/api/v1"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListeners(ctx, l, nil) }()
	b.Cleanup(func() {
		cancel()
		<-done
		f.Close()
	})
	return "https://" + l.Addr().String(), roots
}
