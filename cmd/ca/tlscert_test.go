package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
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
		issue: func(ctx context.Context, csrDER []byte) ([][]byte, string, error) {
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				return nil, "", err
			}
			mu.Lock()
			issued++
			n := issued
			mu.Unlock()
			now := time.Now()
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(n)), NotBefore: now, NotAfter: now.Add(time.Hour),
				DNSNames: csr.DNSNames}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, csr.PublicKey, caKey)
			return [][]byte{der}, "intermediate", err
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

// TestTLSCertFollowsUsableIssuer: with no usable issuer at start the
// listener serves a self-signed certificate instead of failing; once an
// issuer can sign, a proper one replaces it; a certificate whose issuer may
// sign no more is replaced from the next one at once, but kept (not
// swapped for a self-signed one) while no other issuer can sign.
func TestTLSCertFollowsUsableIssuer(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var mu sync.Mutex
	usable := map[string]bool{}
	order := []string{"intermediate-2", "intermediate-3"}
	var serial int64
	tc := &tlsCert{hostname: "localhost", log: slog.New(slog.NewTextHandler(io.Discard, nil)), checkEvery: 10 * time.Millisecond,
		issue: func(ctx context.Context, csrDER []byte) ([][]byte, string, error) {
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				return nil, "", err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range order {
				if usable[id] {
					serial++
					now := time.Now()
					tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: now, NotAfter: now.Add(time.Hour), DNSNames: csr.DNSNames}
					der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, csr.PublicKey, caKey)
					return [][]byte{der}, id, err
				}
			}
			return nil, "", core.ErrNoIssuer
		},
		usable: func(id string) bool {
			mu.Lock()
			defer mu.Unlock()
			if id == "" {
				return usable[order[0]] || usable[order[1]]
			}
			return usable[id]
		},
	}
	set := func(id string, ok bool) { mu.Lock(); usable[id] = ok; mu.Unlock() }
	issuer := func() string { return *tc.issuer.Load() }
	waitIssuer := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); issuer() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("serving a certificate from %q, want %q", issuer(), want)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := tc.renew(ctx); err != nil {
		t.Fatalf("start with no usable issuer: %v", err)
	}
	c := tc.current.Load()
	if issuer() != "" || c == nil || c.Leaf.CheckSignature(c.Leaf.SignatureAlgorithm, c.Leaf.RawTBSCertificate, c.Leaf.Signature) != nil || c.Leaf.VerifyHostname("localhost") != nil {
		t.Fatalf("not a self-signed certificate for localhost (issuer %q)", issuer())
	}
	go tc.keepRenewed(ctx)
	set("intermediate-3", true)
	waitIssuer("intermediate-3")
	set("intermediate-2", true)
	time.Sleep(50 * time.Millisecond)
	if issuer() != "intermediate-3" {
		t.Fatal("renewed although its issuer may still sign")
	}
	// Its issuer revoked, with no other: the certificate is kept.
	set("intermediate-2", false)
	set("intermediate-3", false)
	kept := tc.current.Load()
	time.Sleep(50 * time.Millisecond)
	if tc.current.Load() != kept {
		t.Fatal("a certificate from the revoked issuer was replaced with no issuer to sign another")
	}
	if err := tc.renew(ctx); !errors.Is(err, core.ErrNoIssuer) || tc.current.Load() != kept {
		t.Fatalf("renew with no issuer while the current one is valid: %v", err)
	}
	// Another can sign: replaced at once.
	set("intermediate-2", true)
	waitIssuer("intermediate-2")
}

// TestServerKeyFitsProfile: the node's key is of a type the tls-server
// profile accepts.
func TestServerKeyFitsProfile(t *testing.T) {
	for _, c := range []struct {
		types []string
		want  string
	}{{nil, "P-256"}, {[]string{"rsa4096", "p384"}, "P-384"}, {[]string{"rsa4096", "rsa2048"}, "RSA-2048"}, {[]string{"ed25519"}, "P-256"},
		{[]string{"p521"}, "P-521"}, {[]string{"rsa4096"}, "RSA-4096"}} {
		k, err := serverKey(c.types)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			got = k.Curve.Params().Name
		case *rsa.PrivateKey:
			got = fmt.Sprintf("RSA-%d", k.N.BitLen())
		}
		if got != c.want {
			t.Errorf("key types %v: %s, want %s", c.types, got, c.want)
		}
	}
}
