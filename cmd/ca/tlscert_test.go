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
	"slices"
	"strings"
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
	is := newIssuerSet("intermediate-2", "intermediate-3")
	tc := &tlsCert{hostname: "localhost", log: slog.New(slog.NewTextHandler(io.Discard, nil)), checkEvery: 10 * time.Millisecond,
		issue: is.issue, usable: is.isUsable}
	set := is.set
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

// issuerSet is a fake CA for tlsCert: the first usable one of its issuers
// signs; with none, issuance fails with core.ErrNoIssuer.
type issuerSet struct {
	mu     sync.Mutex
	key    *ecdsa.PrivateKey
	order  []string
	usable map[string]bool
	serial int64
	calls  int // issue calls
}

func newIssuerSet(order ...string) *issuerSet {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &issuerSet{key: k, order: order, usable: map[string]bool{}}
}

func (s *issuerSet) issue(ctx context.Context, csrDER []byte) ([][]byte, string, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, id := range s.order {
		if s.usable[id] {
			s.serial++
			now := time.Now()
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(s.serial), NotBefore: now, NotAfter: now.Add(time.Hour), DNSNames: csr.DNSNames}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, csr.PublicKey, s.key)
			return [][]byte{der}, id, err
		}
	}
	return nil, "", core.ErrNoIssuer
}

func (s *issuerSet) isUsable(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == "" {
		return slices.ContainsFunc(s.order, func(id string) bool { return s.usable[id] })
	}
	return s.usable[id]
}

func (s *issuerSet) set(id string, ok bool) { s.mu.Lock(); s.usable[id] = ok; s.mu.Unlock() }

func (s *issuerSet) issueCalls() int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls }

// TestTLSCertRenewalBacksOff: a certificate that is due while no issuer can
// sign (it is kept) is not tried for again at every check, each failure
// logged as an error, but after a growing wait; an issuer that can sign
// again ends the wait at the next check.
func TestTLSCertRenewalBacksOff(t *testing.T) {
	is := newIssuerSet("intermediate-2", "intermediate-3")
	var logs syncBuffer
	tc := &tlsCert{hostname: "localhost", log: slog.New(slog.NewTextHandler(&logs, nil)), checkEvery: 2 * time.Millisecond,
		issue: is.issue, usable: is.isUsable, retryFirst: time.Hour, retryMax: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	is.set("intermediate-2", true)
	if err := tc.renew(ctx); err != nil {
		t.Fatal(err)
	}
	// Issued 11 hours ago for 12: due. Its issuer then may sign no more,
	// and no other can.
	past := time.Now().Add(-11 * time.Hour)
	tc.issuedAt.Store(&past)
	is.set("intermediate-2", false)
	kept := tc.current.Load()
	go tc.keepRenewed(ctx)
	time.Sleep(300 * time.Millisecond)
	if n := is.issueCalls(); n != 2 {
		t.Fatalf("%d renewal attempts in 300 ms of checks every 2 ms, want the first and none in the hour after it", n-1)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Fatalf("%d errors logged, want 1:\n%s", n, logs.String())
	}
	if tc.current.Load() != kept {
		t.Fatal("the certificate was not kept")
	}
	is.set("intermediate-3", true)
	for deadline := time.Now().Add(5 * time.Second); *tc.issuer.Load() != "intermediate-3"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an issuer that can sign again waited out the back-off")
		}
	}
}

// TestRetryWaits: the wait after failed renewals doubles from the first to
// the most, starts again for another reason, and ends a minute before a
// kept certificate does.
func TestRetryWaits(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var r retry
	var waits []time.Duration
	for range 8 {
		r.failed("is due", now, time.Time{}, 0, 0)
		waits = append(waits, r.next.Sub(now))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if r.failed("has been revoked", now, time.Time{}, 0, 0); r.next.Sub(now) != time.Minute {
		t.Fatalf("another reason waits %v, want a minute", r.next.Sub(now))
	}
	r.failed("has been revoked", now, time.Time{}, 0, 0)
	r.failed("has been revoked", now, now.Add(3*time.Minute), 0, 0)
	if got := r.next.Sub(now); got != 2*time.Minute {
		t.Fatalf("with the kept certificate ending in 3 minutes the next attempt is in %v, want 2m", got)
	}
	if r.failed("has been revoked", now, now.Add(30*time.Second), 0, 0); r.next.Sub(now) != time.Minute {
		t.Fatalf("with the kept certificate ending in 30 s the next attempt is in %v, want a minute", r.next.Sub(now))
	}
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
