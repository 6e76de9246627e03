package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"sort"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// BenchmarkPipelineSteps measures the pieces of one issuance with a P-256
// intermediate, beside x509.CreateCertificate with the same key:
//
//	go test -run - -bench PipelineSteps ./ca
func BenchmarkPipelineSteps(b *testing.B) {
	db, _ := storagetest.SQLite(b)
	c, _, inter := newTestCA(b, db, nil)
	csr := makeCSR(b, testKey(b, "p256"), "a.example", "a.example")
	req := Request{CSR: csr, Profile: "tls-server", Requester: "bench"}
	ctx := context.Background()
	b.Run("raw-CreateCertificate", func(b *testing.B) {
		p, _ := c.prepare(req)
		for i := 0; i < b.N; i++ {
			p.tmpl.SerialNumber = big.NewInt(int64(i + 1))
			if _, err := x509.CreateCertificate(rand.Reader, p.tmpl, inter.Certificate(), csr.PublicKey, inter.signer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prepare", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := c.prepare(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, _ := c.prepare(req)
	p.tmpl.SerialNumber = big.NewInt(1)
	der, _, _ := throwawayCert(c.linter, p.tmpl, inter.Certificate(), csr.PublicKey, inter.signer.Public())
	b.Run("throwaway-copy", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := throwawayCert(c.linter, p.tmpl, inter.Certificate(), csr.PublicKey, inter.signer.Public()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lint", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := c.linter.Lint(der); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("issue-sqlite", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := c.Issue(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLintCostPerLint prints the slowest lints (go test -v -run LintCost).
func TestLintCostPerLint(t *testing.T) {
	if !testing.Verbose() {
		t.Skip("prints measurements only with -v")
	}
	db, _ := storagetest.SQLite(t)
	c, _, inter := newTestCA(t, db, nil)
	csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
	p, _ := c.prepare(Request{CSR: csr, Profile: "tls-server"})
	p.tmpl.SerialNumber = big.NewInt(1)
	der, _, _ := throwawayCert(c.linter, p.tmpl, inter.Certificate(), csr.PublicKey, inter.signer.Public())
	type cost struct {
		name string
		d    time.Duration
	}
	var costs []cost
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	for _, l := range c.linter.lints {
		start := time.Now()
		for i := 0; i < 200; i++ {
			l.Execute(zc, c.linter.config)
		}
		d := time.Since(start) / 200
		costs = append(costs, cost{l.Name, d})
		total += d
	}
	start := time.Now()
	for i := 0; i < 200; i++ {
		zx509.ParseCertificate(der)
	}
	t.Logf("zcrypto parse: %s", time.Since(start)/200)
	sort.Slice(costs, func(i, j int) bool { return costs[i].d > costs[j].d })
	t.Logf("%d lints, sum of per-lint costs: %s", len(costs), total)
	for _, x := range costs[:25] {
		t.Logf("%-60s %s", x.name, x.d)
	}
}

// BenchmarkIssueParallel is the pipeline without HTTP: concurrent Issue
// calls through the group-commit writer on SQLite, beside raw
// x509.CreateCertificate on all cores and the required steps alone (no
// storage, no HTTP) in the same run.
func BenchmarkIssueParallel(b *testing.B) {
	db, _ := storagetest.SQLite(b)
	w := storage.NewCertWriter(db)
	defer w.Close()
	c, _, inter := newTestCA(b, w, nil)
	csr := makeCSR(b, testKey(b, "p256"), "a.example", "a.example")
	req := Request{CSR: csr, Profile: "tls-server", Requester: "bench"}
	ctx := context.Background()
	p, _ := c.prepare(req)
	var raw float64
	b.Run("raw-CreateCertificate", func(b *testing.B) {
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			t := *p.tmpl
			for i := int64(1); pb.Next(); i++ {
				t.SerialNumber = big.NewInt(i)
				if _, err := x509.CreateCertificate(rand.Reader, &t, inter.Certificate(), csr.PublicKey, inter.signer); err != nil {
					b.Error(err)
					return
				}
			}
		})
		raw = float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(raw, "certs/s")
	})
	// The steps the issue requires and nothing else — the CSR's signature
	// check, building the certificate, the throwaway-signed lint copy,
	// zlint, the issuer's signature and its check — on all cores, without
	// storage or HTTP: the ceiling for any issuance path with these steps.
	// "without-zlint" is the same minus the zlint call itself: the bound
	// if linting cost nothing.
	for _, v := range []struct {
		name string
		lint bool
	}{{"required-steps-only", true}, {"required-steps-without-zlint", false}} {
		b.Run(v.name, func(b *testing.B) {
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for i := int64(1); pb.Next(); i++ {
					if err := requiredSteps(c, inter, req, i, v.lint); err != nil {
						b.Error(err)
						return
					}
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "certs/s")
			b.ReportMetric(100*rate/raw, "%raw")
		})
	}
	b.Run("issue", func(b *testing.B) {
		b.SetParallelism(16)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Issue(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		rate := float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(rate, "certs/s")
		b.ReportMetric(100*rate/raw, "%raw")
	})
}

// requiredSteps runs the issue's steps for one certificate, without
// storage: prepare (with the CSR's signature check), the throwaway-signed
// copy, zlint (if lint), the HSM signature, and its parse and check.
func requiredSteps(c *CA, inter *Issuer, req Request, serial int64, lint bool) error {
	p, err := c.prepare(req)
	if err != nil {
		return err
	}
	p.tmpl.SerialNumber = big.NewInt(serial)
	bt, err := buildTBS(c.linter, p.tmpl, inter.Certificate(), p.tmpl.PublicKey, inter.signer.Public())
	if err != nil {
		return err
	}
	if lint {
		f, err := c.linter.Lint(bt.lintDER)
		if err != nil {
			return err
		}
		if bad := f.Refusals(); len(bad) > 0 {
			return fmt.Errorf("lint refusals: %v", bad)
		}
	}
	der, err := signTBS(inter.signer, bt.tbs, bt.sigAlgDER, bt.opts)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	return cert.CheckSignatureFrom(inter.Certificate())
}
