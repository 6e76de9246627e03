package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// TestTLSCertRenewsWhenRevoked: the HTTPS listener's certificate is
// renewed as soon as its record says revoked (an operator's `ca cert
// revoke`, or blocking its key), not days later when it falls due; a
// record that cannot be read renews nothing.
func TestTLSCertRenewsWhenRevoked(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var mu sync.Mutex
	issued := 0
	revoked := map[core.Serial]bool{}
	var statusErr error
	tc := &tlsCert{hostname: "localhost", log: slog.New(slog.NewTextHandler(io.Discard, nil)), checkEvery: 10 * time.Millisecond,
		issue: func(ctx context.Context, csrDER []byte) ([][]byte, error) {
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			issued++
			n := issued
			mu.Unlock()
			now := time.Now()
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(n)), NotBefore: now, NotAfter: now.Add(time.Hour),
				DNSNames: csr.DNSNames}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, csr.PublicKey, caKey)
			return [][]byte{der}, err
		},
		status: func(ctx context.Context, serial core.Serial) (core.CertStatus, error) {
			mu.Lock()
			defer mu.Unlock()
			if statusErr != nil {
				return "", statusErr
			}
			if revoked[serial] {
				return core.StatusRevoked, nil
			}
			return core.StatusValid, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := tc.renew(ctx); err != nil {
		t.Fatal(err)
	}
	go tc.keepRenewed(ctx)
	count := func() int { mu.Lock(); defer mu.Unlock(); return issued }
	time.Sleep(100 * time.Millisecond)
	if n := count(); n != 1 {
		t.Fatalf("renewed %d times with nothing due or revoked", n-1)
	}
	first := core.SerialFromBig(tc.current.Load().Leaf.SerialNumber)
	mu.Lock()
	statusErr = core.Errorf(core.KindUnavailable, "database down")
	mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	if n := count(); n != 1 {
		t.Fatal("an unreadable record renewed the certificate")
	}
	mu.Lock()
	statusErr, revoked[first] = nil, true
	mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); count() == 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the revoked certificate was not renewed")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); core.SerialFromBig(tc.current.Load().Leaf.SerialNumber) == first; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener still serves the revoked certificate")
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := count(); n != 2 {
		t.Fatalf("renewed %d times for one revocation", n-1)
	}
}
