package main

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// tlsCert keeps the HTTPS listener's certificate: issued by our own
// intermediate through the normal pipeline (so it is linted, recorded and
// revocable like any other), for a key that lives only in this process's
// memory, and renewed when a third of its lifetime is left, or at once
// when its record says it has been revoked or its issuer may sign no more.
//
// When no intermediate can issue (each revoked or expired) the listener
// gets a self-signed certificate instead of stopping the node: OCSP and
// CRLs (plain HTTP) must go on exactly then, and the API, the key service,
// /readyz and /metrics stay reachable to whoever accepts that certificate
// (probes that do not verify, an operator's curl -k). Nothing of the CA's
// signs it: not the root (it signs no leaf), nor a revoked intermediate.
type tlsCert struct {
	hostname string
	// issue returns the chain and the id of the issuer that signed it.
	issue func(ctx context.Context, csrDER []byte) (chain [][]byte, issuer string, err error)
	// usable reports whether issuer may sign new certificates; for ""
	// whether any issuer may (nil: always).
	usable func(issuer string) bool
	// status reads a certificate's record (nil: never checked), every
	// checkEvery (zero: a minute), for a revocation by an operator or by
	// blocking its key.
	status     func(ctx context.Context, serial core.Serial) (core.CertStatus, error)
	checkEvery time.Duration
	// retryFirst and retryMax bound the wait after a failed renewal
	// (zero: a minute and an hour; see retry).
	retryFirst, retryMax time.Duration
	// keyTypes lists the key types the tls-server profile accepts (nil:
	// p256): the node's key is the first of them serverKey prefers.
	keyTypes func() []string
	log      *slog.Logger
	current  atomic.Pointer[tls.Certificate]
	// issuedAt is when current was issued: renewal counts from it, not
	// from the backdated notBefore (a backdate of days renewed every
	// minute).
	issuedAt atomic.Pointer[time.Time]
	// issuer is the id of current's issuer; "" for a self-signed one.
	issuer atomic.Pointer[string]
}

// selfSignedLife is the validity of the self-signed fallback certificate:
// short, so that a proper one is tried for again soon even if nothing
// else prompts it.
const selfSignedLife = 24 * time.Hour

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
	var types []string
	if t.keyTypes != nil {
		types = t.keyTypes()
	}
	key, err := serverKey(types)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, serverCertRequest(t.hostname), key)
	if err != nil {
		return err
	}
	chain, issuer, err := t.issue(ctx, csr)
	if errors.Is(err, core.ErrNoIssuer) {
		if c := t.current.Load(); c != nil && *t.issuer.Load() != "" && time.Until(c.Leaf.NotAfter) > time.Minute {
			// Clients trusting the root still accept the one we have
			// (those checking revocation may not: its issuer is revoked).
			return fmt.Errorf("issuing the HTTPS server certificate: %w; the current one is kept until it expires", err)
		}
		return t.selfSign(key)
	}
	if err != nil {
		return fmt.Errorf("issuing the HTTPS server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return err
	}
	t.store(&tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, issuer)
	t.log.Info("HTTPS server certificate issued", "serial", leaf.SerialNumber.Text(16), "issuer", issuer, "not_after", leaf.NotAfter)
	return nil
}

// selfSign serves a self-signed certificate for key (see tlsCert).
func (t *tlsCert) selfSign(key crypto.Signer) error {
	req := serverCertRequest(t.hostname)
	serial, err := core.NewSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial.Big(), Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(selfSignedLife),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("making the self-signed HTTPS server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	t.store(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, "")
	t.log.Error("no issuer can sign the HTTPS server certificate (every intermediate is revoked or expired): "+
		"HTTPS serves a self-signed one, which clients trusting the root refuse; OCSP and CRLs on plain HTTP are unaffected. "+
		"Add an intermediate with `ca issuer add ID --default` and restart ca serve", "not_after", leaf.NotAfter)
	return nil
}

func (t *tlsCert) store(c *tls.Certificate, issuer string) {
	now := time.Now()
	t.current.Store(c)
	t.issuedAt.Store(&now)
	t.issuer.Store(&issuer)
}

// keepRenewed renews the certificate when a third of its lifetime is left
// or when it must be replaced sooner (stale), until ctx ends. A renewal
// that fails is tried again after a minute, then after twice as long each
// time up to an hour (see retry), so that a node with no usable issuer
// logs an error an hour, not each minute; a new reason to replace the
// certificate (an issuer that can sign again) is acted on at its next
// check, whatever the wait.
func (t *tlsCert) keepRenewed(ctx context.Context) {
	var r retry
	for {
		wait := cmp.Or(t.checkEvery, time.Minute)
		for _, at := range []time.Time{t.due(), r.next} {
			if d := time.Until(at); d > 0 && d < wait {
				wait = d
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		why := t.stale(ctx)
		if why == "" && !time.Now().Before(t.due()) {
			why = "is due"
		}
		if why == "" || why == r.why && time.Now().Before(r.next) {
			continue
		}
		if why != "is due" {
			t.log.Warn("the HTTPS server certificate " + why + ": renewing it now")
		}
		err := t.renew(ctx)
		if err == nil {
			r = retry{}
			continue
		}
		var keptUntil time.Time
		if c := t.current.Load(); c != nil && *t.issuer.Load() != "" {
			keptUntil = c.Leaf.NotAfter
		}
		r.failed(why, time.Now(), keptUntil, t.retryFirst, t.retryMax)
		t.log.Error("renewing the HTTPS server certificate", "err", err, "next_attempt", r.next.UTC().Format(time.RFC3339))
	}
}

// due is when the current certificate falls due: a third of its lifetime
// (counted from its issuance) before it ends; zero without one.
func (t *tlsCert) due() time.Time {
	c, at := t.current.Load(), t.issuedAt.Load()
	if c == nil || at == nil {
		return time.Time{}
	}
	return c.Leaf.NotAfter.Add(-c.Leaf.NotAfter.Sub(*at) / 3)
}

// retry is the back-off after failed renewals.
type retry struct {
	why  string // the reason of the renewal that failed ("" none)
	wait time.Duration
	next time.Time // no attempt for the same reason before
}

// failed records a failed renewal for why at now: the next attempt waits
// first (zero: a minute) after the first failure, twice as long after each
// further one for the same reason, up to most (zero: an hour), and comes a
// minute before keptUntil (a certificate kept from an issuer that may sign
// no more; zero: none) ends, when renew serves a self-signed one instead.
func (r *retry) failed(why string, now, keptUntil time.Time, first, most time.Duration) {
	first, most = cmp.Or(first, time.Minute), cmp.Or(most, time.Hour)
	if why != r.why || r.wait == 0 {
		r.wait = first
	} else {
		r.wait = min(2*r.wait, most)
	}
	r.why, r.next = why, now.Add(r.wait)
	if !keptUntil.IsZero() && r.next.After(keptUntil.Add(-time.Minute)) {
		r.next = maxTime(keptUntil.Add(-time.Minute), now.Add(first))
	}
}

// stale says why the current certificate must be replaced before it is
// due ("" when it need not be): it was revoked, its issuer may sign no
// more (revoked: the chain fails revocation checks), or it is the
// self-signed stand-in and an issuer can sign again.
func (t *tlsCert) stale(ctx context.Context) string {
	issuer := t.issuer.Load()
	switch {
	case issuer == nil || t.usable == nil:
	case *issuer == "" && t.usable(""):
		return "is self-signed and an issuer can sign it again"
	case *issuer != "" && !t.usable(*issuer) && t.usable(""):
		// Without another issuer it is kept: a self-signed one would be
		// refused by every client, not only those checking revocation.
		return "comes from issuer " + *issuer + ", which may sign no more"
	}
	if issuer != nil && *issuer == "" {
		return "" // self-signed: no record to read
	}
	if t.revoked(ctx) {
		return "has been revoked"
	}
	return ""
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

// serverKey makes the node's HTTPS key: the first of P-256, P-384, RSA
// 2048, RSA 3072, P-521 and RSA 4096 bits (cheapest for clients first)
// that the tls-server profile accepts (types; zero: P-256), since the
// node's certificate is issued from that profile. A profile that accepts
// none of them (Ed25519 only, which browsers do not take) gets P-256, and
// issuance says the profile refuses it.
func serverKey(types []string) (crypto.Signer, error) {
	for _, kt := range []string{"p256", "p384", "rsa2048", "rsa3072", "p521", "rsa4096"} {
		if len(types) == 0 || slices.Contains(types, kt) {
			return ca.NewKey(kt)
		}
	}
	return ca.NewKey("p256")
}
