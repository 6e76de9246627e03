package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
)

// Client certificates are requested by the TLS layer but verified here
// (the server asks with tls.RequestClientCert): logging in to the API
// needs the clientAuth extended key usage, while renewal accepts any
// certificate we issued, including serverAuth-only TLS server
// certificates, which a TLS-layer check for client certificates would cut
// off in the handshake. The handshake has already checked the client's
// CertificateVerify, so the client holds the leaf's private key.

// verifyPool is our issuers as roots (self-signed) and intermediates.
func (a *API) verifyPool() (roots, inters *x509.CertPool) {
	roots, inters = x509.NewCertPool(), x509.NewCertPool()
	for _, is := range a.issuers.Issuers() {
		for _, c := range is.Chain() {
			if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
				roots.AddCert(c)
			} else {
				inters.AddCert(c)
			}
		}
	}
	return roots, inters
}

// clientCert returns the request's TLS client certificate verified to
// chain to one of our issuers for usage (x509.ExtKeyUsageAny: any), or nil
// if the client sent none. One that does not verify is
// KindUnauthenticated.
func (a *API) clientCert(c *gin.Context, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	st := c.Request.TLS
	if st == nil || len(st.PeerCertificates) == 0 {
		return nil, nil
	}
	leaf := st.PeerCertificates[0]
	inters := a.inters
	if len(st.PeerCertificates) > 1 { // the client sent intermediates: add them to a copy
		inters = inters.Clone()
		for _, p := range st.PeerCertificates[1:] {
			inters.AddCert(p)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: a.roots, Intermediates: inters, CurrentTime: a.now(),
		KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert == leaf {
			// Not "does not verify": an operator would look for a trust problem.
			when := "expired at " + leaf.NotAfter.UTC().Format(time.RFC3339) + "; request a new one"
			if a.now().Before(leaf.NotBefore) {
				when = "is not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339) + " (check this host's clock)"
			}
			return nil, core.Wrap(core.KindUnauthenticated, err, "the client certificate "+when)
		}
		if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
			return nil, core.Wrap(core.KindUnauthenticated, err, "the client certificate is not for client authentication (no clientAuth extended key usage); this API takes "+ClientProfile+" certificates")
		}
		return nil, core.Wrap(core.KindUnauthenticated, err, "the client certificate does not verify against this CA")
	}
	if err := a.checkCAs(c.Request.Context(), chains); err != nil {
		return nil, err
	}
	return leaf, nil
}

// checkCAs refuses a client certificate whose every chain passes through
// a CA certificate recorded as revoked (`ca cert revoke --ca`): what that
// CA signed is no longer trusted, whatever the leaf's own record says. The
// verify pool is built once, so the check reads the records each time; a
// CA certificate with no record (made outside this CA's ceremonies) is
// taken as not revoked, as the issuance pipeline takes it.
func (a *API) checkCAs(ctx context.Context, chains [][]*x509.Certificate) error {
	for _, chain := range chains {
		revoked := false
		for _, ca := range chain[1:] {
			rec, err := a.auth.Certificate(ctx, core.SerialFromBig(ca.SerialNumber))
			if core.IsNotFound(err) {
				continue
			}
			if err != nil {
				return core.Wrap(core.KindUnavailable, err, "the client certificate's issuers cannot be checked now")
			}
			if rec.Status != core.StatusValid && bytes.Equal(rec.DER, ca.Raw) {
				revoked = true
				break
			}
		}
		if !revoked {
			return nil
		}
	}
	return core.Errorf(core.KindUnauthenticated, "the CA that issued this client certificate has been revoked")
}
