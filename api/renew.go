package api

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// RenewRequest is the optional JSON body of POST /certificates/renew: a
// CSR for a rekey. An empty body renews with the same key.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// renewKey is the one idempotency key of each certificate's renewal: a
// certificate renews once (the claim is kept until it expires); asking
// again returns the same new certificate, so a client that lost the answer
// simply asks again. Each renewal can renew in turn, though, so a stolen
// certificate (and its key) can keep a line of successors going, one at a
// time, until the line is revoked: `ca cert revoke-all` finds a line's
// renewals, and a keyCompromise block revokes every certificate of the
// key.
const renewKey = storage.RenewalKey

// renew: POST /certificates/renew. The client authenticates with the
// certificate it renews, as its TLS client certificate (ra/renew.go);
// API keys play no part.
func (a *API) renew(c *gin.Context) {
	if _, err := issuedType(c); err != nil {
		a.fail(c, err)
		return
	}
	cur, err := a.clientCert(c, x509.ExtKeyUsageAny)
	if err == nil && cur == nil {
		err = core.Errorf(core.KindUnauthenticated, "present the certificate to renew, and its key, as the TLS client certificate (curl --cert cert.pem --key key.pem)")
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	csr, err := a.readRenewCSR(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	rr := ra.RenewRequest{Current: cur, CSR: csr, OriginCredential: a.originCredential}
	ctx := c.Request.Context()
	origin, err := a.auth.CheckRenewal(ctx, rr)
	if err != nil {
		a.fail(c, err)
		return
	}
	spki := cur.RawSubjectPublicKeyInfo
	if csr != nil {
		spki = csr.RawSubjectPublicKeyInfo
	}
	fp := sha256.Sum256(spki)
	req := ra.Request{Principal: ra.RenewalPrincipal(core.SerialFromBig(cur.SerialNumber))}
	// The claim stands while the certificate could be presented again:
	// it renews once, not once a day.
	claim, issue := a.claimIdempotent(c, req, renewKey, fp[:],
		"this certificate was already renewed with another key; renew the new certificate instead", cur.NotAfter)
	if !issue {
		return
	}
	// A renewal is a certificate: it counts against the hourly cap of
	// whoever asked for the first certificate of its line (a replay
	// above does not count, as for issuance).
	iss, retry, err := a.WithinCap(ctx, origin, func() (*ca.Issued, error) { return a.auth.Renew(ctx, rr) })
	if retry > 0 {
		SetRetryAfter(c.Writer.Header(), retry)
	}
	claim.finish(c, iss, err)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeIssued(c, req, iss, core.StatusValid)
}

// readRenewCSR reads the optional rekey CSR: none (empty body), JSON
// {"csr": …}, or an application/pkcs10 body (PEM or DER).
func (a *API) readRenewCSR(c *gin.Context) (*x509.CertificateRequest, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, nil
	}
	mt, err := mediaType(c, issueMediaTypes)
	if err != nil {
		return nil, err
	}
	var raw []byte
	switch mt {
	case "application/pkcs10":
		raw = body
	case "application/json", "":
		var rr RenewRequest
		if err := decodeObject(body, &rr); err != nil {
			return nil, withFields(err, "csr, for a rekey")
		}
		if rr.CSR == "" {
			return nil, nil
		}
		raw = []byte(rr.CSR)
	default:
		return nil, &unsupportedMedia{got: mt, want: issueMediaTypes}
	}
	der, err := csrDER(raw)
	if err != nil {
		return nil, err
	}
	return ra.ParseCSR(der)
}

// originCredential is what the credential that asked for the first
// certificate of a renewal line is now: an API key's limits, revoked or
// not, and in the console too, and its admin scope while it is usable (a
// revoked or expired key mints no API credential, so what it minted stops
// renewing); a client certificate name's (api.client_cert_limits and
// client_cert_scopes). Other requesters (ACME accounts, whose EAB names
// never change, ceremonies) are none of these: no limits, and no admin
// scope.
func (a *API) originCredential(ctx context.Context, origin string) (ra.Credential, error) {
	if id, ok := strings.CutPrefix(strings.TrimPrefix(origin, ConsolePrefix), "apikey:"); ok {
		k, err := a.store.APIKeyByID(ctx, id)
		if core.IsNotFound(err) {
			return ra.Credential{}, core.Errorf(core.KindForbidden, "API key %s, which asked for the first certificate of this line, is not on record; request a new certificate", id)
		}
		if err != nil {
			return ra.Credential{}, err
		}
		lim, err := KeyLimits(k)
		return ra.Credential{Limits: lim, Admin: Grants(k.Scopes, ScopeAdmin) && KeyUsable(k, a.now()) == nil}, err
	}
	if strings.HasPrefix(origin, "mtls:") {
		return ra.Credential{Limits: a.limitsFor(origin), Admin: Grants(a.scopesFor(origin), ScopeAdmin)}, nil
	}
	return ra.Credential{}, nil
}
