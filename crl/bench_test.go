package crl_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/crl"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
)

// genSource streams n revocations with random 128-bit serials generated on
// the fly, as a database cursor would: nothing but the current entry is
// held.
func genSource(n int, at time.Time) crl.EntrySource {
	return func(fn func(crl.Entry) error) error {
		var b [16]byte
		for i := 0; i < n; i++ {
			rand.Read(b[:])
			b[0] &= 0x7f
			b[0] |= 0x01
			s := fmt.Sprintf("%x", b[:])
			if err := fn(crl.Entry{Serial: core.Serial(s), RevokedAt: at.Add(time.Duration(i) * time.Millisecond),
				Reason: core.RevocationReason(binary.BigEndian.Uint16(b[14:]) % 6)}); err != nil {
				return err
			}
		}
		return nil
	}
}

// peakHeap samples HeapAlloc while fn runs and returns the highest value
// seen above the starting heap, and fn's duration.
func peakHeap(fn func()) (peak uint64, d time.Duration) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var max atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > max.Load() {
				max.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	fn()
	d = time.Since(start)
	close(stop)
	wg.Wait()
	if m := max.Load(); m > base {
		peak = m - base
	}
	return peak, d
}

func benchTemplate(ca *ocsptest.CA) crl.Template {
	now := time.Now()
	return crl.Template{Issuer: ca.Cert, Number: 42, ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour),
		DistributionPoint: "http://127.0.0.1:8080/crl/intermediate.crl"}
}

// BenchmarkCRL builds and signs CRLs of 100,000 and 1,000,000 entries with
// the streaming encoder, beside crypto/x509.CreateRevocationList for
// 100,000 entries, reporting time and peak heap above the starting heap.
func BenchmarkCRL(b *testing.B) {
	ca := ocsptest.NewCA(b, "bench CA", nil)
	now := time.Now()
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("streaming/%d", n), func(b *testing.B) {
			var size int
			var peak uint64
			var total time.Duration
			for i := 0; i < b.N; i++ {
				p, d := peakHeap(func() {
					der, err := crl.Encode(context.Background(), benchTemplate(ca), ca.Key, genSource(n, now))
					if err != nil {
						b.Fatal(err)
					}
					size = len(der)
				})
				peak, total = max(peak, p), total+d
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
			b.ReportMetric(float64(size)/(1<<20), "crl-MiB")
			b.ReportMetric(total.Seconds()/float64(b.N), "s/crl")
		})
	}
	b.Run("stdlib/100000", func(b *testing.B) {
		var peak uint64
		var total time.Duration
		for i := 0; i < b.N; i++ {
			p, d := peakHeap(func() {
				rl := &x509.RevocationList{Number: big.NewInt(42), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}
				genSource(100_000, now)(func(e crl.Entry) error {
					rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, x509.RevocationListEntry{
						SerialNumber: e.Serial.Big(), RevocationTime: e.RevokedAt, ReasonCode: int(e.Reason)})
					return nil
				})
				if _, err := x509.CreateRevocationList(rand.Reader, rl, ca.Cert, ca.Key); err != nil {
					b.Fatal(err)
				}
			})
			peak, total = max(peak, p), total+d
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		b.ReportMetric(total.Seconds()/float64(b.N), "s/crl")
	})
}
