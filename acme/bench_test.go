package acme_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/ra"
)

// BenchmarkOrders measures complete ACME orders per second at concurrency
// 8 through the production wiring (see prodEnv: ra over the ca pipeline
// with zlint, storage.CertWriter on SQLite, the real acme/challenge
// validator doing http-01 over loopback TCP, one TLS listener; plain Go
// P-256 issuing keys instead of the HSM), beside, in the same run and the
// same process:
//   - the REST issuance rate through api on the same listener, same
//     Authority, concurrency 8;
//   - the ra.Issue rate without any front end, concurrency 8;
//   - raw x509.CreateCertificate with the intermediate key on all cores.
//
// Each ACME client behaves like lego v5: new order, fetch the
// authorization, publish the http-01 token, POST the challenge; if the
// answer is not yet valid, sleep the server's Retry-After and poll the
// authorization with exponential backoff; finalize; poll the order the
// same way if it is not yet valid; download. Nonces are reused from each
// response, so newNonce is called once per client.
//
//	go test -run - -bench Orders -benchtime 400x ./acme
func BenchmarkOrders(b *testing.B) {
	const conc = 8
	names := make([]string, conc)
	for i := range names {
		names[i] = fmt.Sprintf("c%d.%s", i, benchSuffix)
	}
	e := newProdEnv(b, names...)
	inter := e.pipeline.Issuers()[0]
	tmplKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER := csrFor(b, tmplKey, "", "rest."+benchSuffix)
	csr, _ := x509.ParseCertificateRequest(csrDER)
	restBody, _ := json.Marshal(map[string]any{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})

	rates := map[string]float64{}
	record := func(b *testing.B, name, unit string, start time.Time) {
		r := float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(r, unit)
		rates[name] = r
	}
	parallel := func(n int, f func() error) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		for range conc {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if err := f(); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}

	b.Run("raw-CreateCertificate", func(b *testing.B) {
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "bench"}, DNSNames: []string{"raw." + benchSuffix},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		var serial atomic.Int64
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			t := *tmpl
			for pb.Next() {
				t.SerialNumber = big.NewInt(serial.Add(1))
				if _, err := x509.CreateCertificate(rand.Reader, &t, inter.Certificate(), tmplKey.Public(), inter.Signer()); err != nil {
					b.Error(err)
					return
				}
			}
		})
		record(b, "raw", "certs/s", start)
	})
	b.Run("ra-Issue-c8", func(b *testing.B) {
		start := time.Now()
		err := parallel(b.N, func() error {
			_, err := e.auth.Issue(context.Background(), ra.Request{CSR: csr, Principal: "bench"})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		record(b, "ra", "certs/s", start)
	})
	b.Run("REST-c8", func(b *testing.B) {
		tr := e.ts.Client().Transport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		client := &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
		start := time.Now()
		err := parallel(b.N, func() error {
			req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/certificates", bytes.NewReader(restBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.apiKey)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("REST issue: status %d", resp.StatusCode)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		record(b, "rest", "certs/s", start)
	})
	b.Run("ACME-c8", func(b *testing.B) {
		e.ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = conc
		// Like the REST clients, each ACME client reuses one certificate
		// key and CSR, so both measure the server, not the client's keygen.
		cs := make([]*rawClient, conc)
		csrs := make([][]byte, conc)
		for i := range cs {
			cs[i] = newRawClient(e.env)
			cs[i].register(nil)
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csrs[i] = csrFor(b, k, "", names[i])
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i, c := range cs {
			n := b.N / conc
			if i < b.N%conc {
				n++
			}
			wg.Go(func() {
				for range n {
					c.legoOrder(names[i], csrs[i])
				}
			})
		}
		wg.Wait()
		record(b, "acme", "orders/s", start)
		if rates["rest"] > 0 {
			b.ReportMetric(100*rates["acme"]/rates["rest"], "%REST")
		}
		b.Logf("concurrency 8: ACME %.0f orders/s | REST %.0f certs/s | ra.Issue %.0f certs/s | raw x509.CreateCertificate %.0f certs/s (all cores)",
			rates["acme"], rates["rest"], rates["ra"], rates["raw"])
	})
}

// legoOrder runs one single-name order the way lego v5 does (see
// BenchmarkOrders), finalizing with csr, and fails the benchmark on any unexpected answer.
func (c *rawClient) legoOrder(name string, csr []byte) {
	t := c.e.t
	r := c.post(c.e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: name}}}, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("newOrder: %d %s", r.StatusCode, r.body)
	}
	orderURL := r.Header.Get("Location")
	o := decode[orderDoc](t, r)
	for _, az := range o.Authorizations {
		a := decode[authzDoc](t, c.post(az, nil, nil))
		var chURL string
		for _, ch := range a.Challenges {
			if ch.Type == "http-01" {
				c.e.present(ch.Token, ch.Token+"."+c.thumbprint())
				chURL = ch.URL
			}
		}
		r := c.post(chURL, map[string]any{}, nil)
		ch := decode[struct{ Status string }](t, r)
		if ch.Status != "valid" {
			c.backoff(r, func() bool {
				a := decode[authzDoc](t, c.post(az, nil, nil))
				if a.Status == "invalid" {
					t.Fatalf("authorization invalid: %+v", a)
				}
				return a.Status == "valid"
			})
		}
	}
	r = c.post(o.Finalize, map[string]string{"csr": b64(csr)}, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("finalize: %d %s", r.StatusCode, r.body)
	}
	if o = decode[orderDoc](t, r); o.Status != "valid" {
		c.backoff(r, func() bool {
			o = decode[orderDoc](t, c.post(orderURL, nil, nil))
			return o.Status == "valid"
		})
	}
	if r = c.post(o.Certificate, nil, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("download: %d %s", r.StatusCode, r.body)
	}
}

// backoff polls like lego: first after the response's Retry-After (5 s if
// absent), then growing by half each time, until done says so.
func (c *rawClient) backoff(r *response, done func() bool) {
	wait := 5 * time.Second
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil {
		wait = time.Duration(s) * time.Second
	}
	for range 50 {
		time.Sleep(wait)
		if done() {
			return
		}
		wait += wait / 2
	}
	c.e.t.Fatal("gave up polling")
}
