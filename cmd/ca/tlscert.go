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
	t.current.Store(&tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf})
	t.log.Info("HTTPS server certificate issued", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	return nil
}

// keepRenewed renews the certificate when a third of its lifetime is left,
// retrying every minute after a failure, until ctx ends.
func (t *tlsCert) keepRenewed(ctx context.Context) {
	for {
		wait := time.Minute
		if c := t.current.Load(); c != nil {
			life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
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
