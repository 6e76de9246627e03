package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// tlsCert keeps the HTTPS listener's certificate: issued by our own
// intermediate through the normal pipeline (so it is linted, recorded and
// revocable like any other), for a key that lives only in this process's
// memory, and renewed when a third of its lifetime is left.
type tlsCert struct {
	hostname string
	issue    func(ctx context.Context, csrDER []byte) ([][]byte, error)
	log      *slog.Logger
	current  atomic.Pointer[tls.Certificate]
	// issuedAt is when current was issued: renewal counts from it, not
	// from the backdated notBefore (a backdate of days renewed every
	// minute).
	issuedAt atomic.Pointer[time.Time]
}

func (t *tlsCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := t.current.Load()
	if c == nil {
		return nil, fmt.Errorf("no server certificate yet")
	}
	return c, nil
}

// renew issues a fresh certificate for a fresh key.
func (t *tlsCert) renew(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: t.hostname}}
	if ip := net.ParseIP(t.hostname); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{t.hostname}
	}
	if t.hostname == "localhost" { // what https://127.0.0.1:8443 checks
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return err
	}
	chain, err := t.issue(ctx, csr)
	if err != nil {
		return fmt.Errorf("issuing the HTTPS server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return err
	}
	now := time.Now()
	t.current.Store(&tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf})
	t.issuedAt.Store(&now)
	t.log.Info("HTTPS server certificate issued", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	return nil
}

// keepRenewed renews the certificate when a third of its lifetime is left,
// retrying every minute after a failure, until ctx ends.
func (t *tlsCert) keepRenewed(ctx context.Context) {
	for {
		wait := time.Minute
		if c, at := t.current.Load(), t.issuedAt.Load(); c != nil && at != nil {
			life := c.Leaf.NotAfter.Sub(*at)
			wait = max(time.Until(c.Leaf.NotAfter.Add(-life/3)), time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := t.renew(ctx); err != nil {
			t.log.Error("renewing the HTTPS server certificate", "err", err)
		}
	}
}
