package main

import (
	"cmp"
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

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// tlsCert keeps the HTTPS listener's certificate: issued by our own
// intermediate through the normal pipeline (so it is linted, recorded and
// revocable like any other), for a key that lives only in this process's
// memory, and renewed when a third of its lifetime is left, or at once
// when its record says it has been revoked.
type tlsCert struct {
	hostname string
	issue    func(ctx context.Context, csrDER []byte) ([][]byte, error)
	// status reads a certificate's record (nil: never checked), every
	// checkEvery (zero: a minute), for a revocation by an operator or by
	// blocking its key.
	status     func(ctx context.Context, serial core.Serial) (core.CertStatus, error)
	checkEvery time.Duration
	log        *slog.Logger
	current    atomic.Pointer[tls.Certificate]
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

// serverCertRequest is the request for the node's HTTPS certificate for
// hostname. A host name is its common name too; an address is not (a
// common name holding an address reads as a DNS name to OpenSSL under
// name constraints, and zlint refuses a private one in the subject).
func serverCertRequest(hostname string) *x509.CertificateRequest {
	if ip := net.ParseIP(hostname); ip != nil {
		return &x509.CertificateRequest{IPAddresses: []net.IP{ip}}
	}
	req := &x509.CertificateRequest{Subject: pkix.Name{CommonName: hostname}, DNSNames: []string{hostname}}
	if hostname == "localhost" { // what https://127.0.0.1:8443 checks
		req.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	return req
}

// serverCertRefusal says why name constraints would refuse the node's
// HTTPS certificate for hostname, or "".
func serverCertRefusal(nc ca.NameConstraints, hostname string) string {
	req := serverCertRequest(hostname)
	return nc.CertificateRefusal(&x509.Certificate{Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses})
}

// renew issues a fresh certificate for a fresh key.
func (t *tlsCert) renew(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, serverCertRequest(t.hostname), key)
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

// keepRenewed renews the certificate when a third of its lifetime is left
// or when it has been revoked, retrying every minute after a failure,
// until ctx ends.
func (t *tlsCert) keepRenewed(ctx context.Context) {
	for {
		due := time.Now().Add(time.Minute)
		if c, at := t.current.Load(), t.issuedAt.Load(); c != nil && at != nil {
			life := c.Leaf.NotAfter.Sub(*at)
			due = maxTime(c.Leaf.NotAfter.Add(-life/3), time.Now().Add(time.Minute))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Until(due), cmp.Or(t.checkEvery, time.Minute))):
		}
		if time.Now().Before(due) {
			if !t.revoked(ctx) {
				continue
			}
			t.log.Warn("the HTTPS server certificate has been revoked: renewing it now")
		}
		if err := t.renew(ctx); err != nil {
			t.log.Error("renewing the HTTPS server certificate", "err", err)
		}
	}
}

// revoked reports whether the current certificate's record says revoked;
// a record that cannot be read now counts as not revoked (the next check
// reads it again).
func (t *tlsCert) revoked(ctx context.Context) bool {
	c := t.current.Load()
	if c == nil || t.status == nil {
		return false
	}
	st, err := t.status(ctx, core.SerialFromBig(c.Leaf.SerialNumber))
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("reading the HTTPS server certificate's status", "err", err)
		}
		return false
	}
	return st == core.StatusRevoked
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
