package ra

import (
	"bytes"
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// Renewal (step-ca's /renew and /rekey, for REST clients): the holder of
// a certificate we issued, still valid, proves possession of its key and
// gets a new certificate with the same identity — subject, SANs, profile
// and lifetime — from the current default issuer, without an API key. The
// new key is the old one (renew) or the key of a CSR the holder signed
// (rekey); a rekey CSR contributes only its key, never names.
//
// Everything is checked again as for a new request: the renewed
// certificate's profile must still exist and be renewable, and its names
// and key must pass today's policy, so tightening the policy stops
// renewals of what it no longer allows.

// RenewalPolicy says which certificates may renew themselves.
type RenewalPolicy struct {
	// Disabled turns renewal off. Zero: on.
	Disabled bool `yaml:"disabled"`
	// Profiles lists the profiles whose certificates may renew. Zero:
	// tls-server, tls-client, tls-server-client and api-client. CA and
	// code-signing certificates are never renewable by default: their
	// holders should come back to whoever granted them.
	Profiles []string `yaml:"profiles"`
}

var defaultRenewable = []string{"tls-server", "tls-client", "tls-server-client", "api-client"}

// RenewRequest asks for a new certificate with the identity of Current.
type RenewRequest struct {
	// Current is the certificate being renewed, already verified to chain
	// to one of our issuers; its holder has proved possession of its key
	// (the TLS handshake's CertificateVerify).
	Current *x509.Certificate
	// CSR, if set, is a rekey: the new certificate gets its key. Its
	// signature is checked here; its names are ignored.
	CSR *x509.CertificateRequest
	// OriginCredential says what the credential that asked for the
	// first certificate of the line (the origin: "apikey:ID",
	// "mtls:NAME", …) is now. The renewal must fit its limits as a new
	// request would (names narrowed, or the common name rule tightened,
	// stop the renewals of what it got before), and an API credential
	// (CredentialProfile) renews only while its origin is an admin
	// without limits, as minting one needs. Zero: only policy applies.
	OriginCredential func(ctx context.Context, origin string) (Credential, error)
}

// Credential is what a front end knows now of a principal that asks for
// certificates.
type Credential struct {
	Limits *Limits // nil: only the policy
	Admin  bool    // it holds the admin scope
}

// RenewalPrincipal is who a renewal of the certificate with this serial
// is recorded as requested by.
func RenewalPrincipal(serial core.Serial) string { return "renew:" + string(serial) }

// Renew checks rr against the certificate's record and today's policy and
// issues the renewed certificate.
func (a *Authority) Renew(ctx context.Context, rr RenewRequest) (*ca.Issued, error) {
	creq, _, err := a.checkRenewal(ctx, rr)
	if err != nil {
		a.log.InfoContext(ctx, "renewal refused", "serial", serialOf(rr.Current), "reason", core.DetailOf(err))
		return nil, err
	}
	return a.ca.Issue(ctx, creq)
}

// CheckRenewal runs Renew's checks without issuing: a front end that can
// replay an earlier renewal asks first, so a certificate revoked since
// never gets one. It returns who asked for the first certificate of the
// renewal line, whom a front end counts the renewal against (a line
// renews one certificate at a time, but without bound over time).
func (a *Authority) CheckRenewal(ctx context.Context, rr RenewRequest) (origin string, err error) {
	_, origin, err = a.checkRenewal(ctx, rr)
	return origin, err
}

func serialOf(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return string(core.SerialFromBig(c.SerialNumber))
}

func (a *Authority) checkRenewal(ctx context.Context, rr RenewRequest) (ca.Request, string, error) {
	cur := rr.Current
	if cur == nil || cur.SerialNumber == nil {
		return ca.Request{}, "", core.Errorf(core.KindUnauthenticated, "renewal needs the current certificate as the TLS client certificate")
	}
	serial := core.SerialFromBig(cur.SerialNumber)
	rec, err := a.ca.Certificate(ctx, serial)
	switch {
	case core.IsNotFound(err):
		return ca.Request{}, "", core.Errorf(core.KindUnauthenticated, "certificate %s is not one we have a record of", serial)
	case err != nil:
		return ca.Request{}, "", err
	case !bytes.Equal(rec.DER, cur.Raw):
		return ca.Request{}, "", core.Errorf(core.KindUnauthenticated, "certificate %s is not the one we issued under that serial", serial)
	case rec.Status == core.StatusRevoked:
		return ca.Request{}, "", core.Errorf(core.KindUnauthenticated, "certificate %s has been revoked and cannot be renewed", serial)
	case rec.Status != core.StatusValid:
		return ca.Request{}, "", core.Errorf(core.KindUnauthenticated, "certificate %s is not valid", serial)
	}
	p := a.policy.Renewal
	if p.Disabled {
		return ca.Request{}, "", core.Errorf(core.KindForbidden, "certificate renewal is turned off by policy")
	}
	renewable := p.Profiles
	if len(renewable) == 0 {
		renewable = defaultRenewable
	}
	if !slices.Contains(renewable, rec.Profile) {
		return ca.Request{}, "", core.Errorf(core.KindForbidden, "certificates of profile %s cannot renew themselves; request a new one", rec.Profile)
	}
	prof, err := a.ca.Profile(rec.Profile)
	if err != nil {
		return ca.Request{}, "", err
	}
	// Whoever asked for the first certificate of this line must still be
	// granted its profile (policy.profile_access): withdrawing a grant
	// stops the renewals of what was issued under it.
	origin, err := a.origin(ctx, rec)
	if err != nil {
		return ca.Request{}, "", err
	}
	if !a.policy.mayUse(origin, prof.Name) {
		return ca.Request{}, "", core.Errorf(core.KindForbidden, "profile %s is no longer granted to %s, who asked for the first certificate of this line; request a new one",
			prof.Name, principalLabel(origin))
	}
	pub, alg := cur.PublicKey, cur.PublicKeyAlgorithm
	if rr.CSR != nil {
		if err := CheckCSRSignature(rr.CSR); err != nil {
			return ca.Request{}, "", err
		}
		pub, alg = rr.CSR.PublicKey, rr.CSR.PublicKeyAlgorithm
	}
	if err := a.checkKey(pub, prof); err != nil {
		return ca.Request{}, "", err
	}
	// The identity is the current certificate's, as a CSR would carry it
	// (the CA's template takes subject and SANs from the request).
	same := &x509.CertificateRequest{PublicKey: pub, PublicKeyAlgorithm: alg, Subject: cur.Subject,
		DNSNames: cur.DNSNames, IPAddresses: cur.IPAddresses, EmailAddresses: cur.EmailAddresses, URIs: cur.URIs}
	ids := namesToCheck(same, nil, prof.Name)
	if err := a.checkNames("", ids); err != nil {
		return ca.Request{}, "", err
	}
	life := min(cur.NotAfter.Sub(cur.NotBefore), a.maxLifetime(prof))
	creq := ca.Request{CSR: same, Profile: prof.Name, Lifetime: life, Requester: RenewalPrincipal(serial), Origin: origin, CSRChecked: true}
	if rr.OriginCredential != nil {
		cred, err := rr.OriginCredential(ctx, origin)
		if err != nil {
			return ca.Request{}, "", err
		}
		if prof.Name == CredentialProfile && !FullAdmin(cred.Limits, cred.Admin) {
			return ca.Request{}, "", core.Errorf(core.KindForbidden, "an %s certificate is an API credential: it renews only while %s, who asked for the first certificate of its line, is an admin without name or profile limits, and not revoked or expired; request a new one",
				prof.Name, principalLabel(origin))
		}
		if err := cred.Limits.checkRenewal(prof.Name, ids, same.Subject.CommonName); err != nil {
			return ca.Request{}, "", core.Errorf(core.KindForbidden, "%s asked for the first certificate of this line, and its limits now refuse the renewal: %s; request a new certificate",
				principalLabel(origin), core.DetailOf(err))
		}
		if cred.Limits.limitsNames() {
			creq.CommonNameRefusal = cred.Limits.commonNameRefusal // a template's own common name
		}
	}
	return creq, origin, nil
}

// origin is who asked for the first certificate of rec's line: rec's
// requester, or for a renewal the origin it recorded. A renewal recorded
// without one (by a node still on the previous release during a rolling
// upgrade; the upgrade fills in those made before) is followed back to the
// nearest that has one, and the renewal made from it records what was
// found. Not knowing the origin refuses the renewal: its limits, grants
// and cap could not be applied.
func (a *Authority) origin(ctx context.Context, rec *core.Certificate) (string, error) {
	who, kept := rec.Requester, rec.Origin
	seen := map[string]bool{string(rec.Serial): true}
	for reads := 0; ; reads++ {
		if kept != "" {
			return kept, nil
		}
		prev, ok := strings.CutPrefix(who, RenewalPrincipal(""))
		if !ok {
			return who, nil
		}
		if seen[prev] {
			return "", core.Errorf(core.KindForbidden, "this certificate's renewal line goes round in a circle at %s (records edited by hand?); request a new certificate", prev)
		}
		seen[prev] = true
		if reads == MaxRenewalWalk {
			return "", core.Errorf(core.KindForbidden, "this certificate's renewal line goes back more than %d renewals recorded without their origin; request a new certificate", MaxRenewalWalk)
		}
		p, err := a.ca.Certificate(ctx, core.Serial(prev))
		if core.IsNotFound(err) {
			return "", core.Errorf(core.KindForbidden, "certificate %s, which this line renews, is not on record, so who asked for its first certificate is unknown; request a new certificate", prev)
		}
		if err != nil {
			return "", err
		}
		who, kept = p.Requester, p.Origin
	}
}

// MaxRenewalWalk bounds origin's walk back through renewals recorded
// without their origin (one read each).
const MaxRenewalWalk = 1000

// maxLifetime is the profile's maximum, or policy's if lower.
func (a *Authority) maxLifetime(prof ca.Profile) time.Duration {
	max := prof.MaxLifetime
	if m, ok := a.policy.MaxLifetime[prof.Name]; ok && m < max {
		max = m
	}
	return max
}
