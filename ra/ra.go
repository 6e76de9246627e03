package ra

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// CA is what ra needs from package ca (*ca.CA implements it).
type CA interface {
	Issue(ctx context.Context, req ca.Request) (*ca.Issued, error)
	DryRun(ctx context.Context, req ca.Request) (*ca.Draft, error)
	Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, invalidity time.Time) error
	RevokeAndBlockKey(ctx context.Context, serial core.Serial, invalidity time.Time) error
	Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error)
	Profile(name string) (ca.Profile, error)
	// NameRefusal says why the name constraints of issuer's chain (zero:
	// the default issuer's) refuse a name of kind dns, ip, email or uri;
	// "" when they allow it.
	NameRefusal(issuer, kind, name string) string
	// IssuerFor is the id of the issuer that would sign a request ("":
	// refused before one is chosen); DefaultIssuer that of a request
	// naming none whose usage the default allows.
	IssuerFor(req ca.Request) string
	DefaultIssuer() string
	// Refused counts a request policy refused in the issuance metrics.
	Refused(profile string)
	// CheckIssuers rereads whether each issuer's own certificate is
	// revoked (a revoked issuer issues nothing more).
	CheckIssuers(ctx context.Context) error
	// RevokeBlockedKeys revokes the valid certificates whose key is
	// blocked and returns them.
	RevokeBlockedKeys(ctx context.Context) ([]core.Certificate, error)
}

// Options configures an Authority.
type Options struct {
	CA     CA     // required
	Policy Policy // see Policy for each field's zero value
	// DefaultProfile is used when a request names none. Zero: tls-server.
	DefaultProfile string
	Logger         *slog.Logger // zero: discard
	// OnRevoke runs after each successful revocation, for example to
	// publish the event that makes every node drop its cached OCSP answer
	// (storage.EncodeRevoked on the events bus). Zero: nothing.
	OnRevoke func(ctx context.Context, issuerID string, serial core.Serial)
}

// Authority applies policy and drives issuance and revocation. It is safe
// for concurrent use.
type Authority struct {
	ca             CA
	policy         Policy
	defaultProfile string
	log            *slog.Logger
	onRevoke       func(ctx context.Context, issuerID string, serial core.Serial)
}

// New checks the policy and returns an Authority.
func New(o Options) (*Authority, error) {
	if o.CA == nil {
		return nil, errors.New("ra: a CA is required")
	}
	if err := o.Policy.normalize(); err != nil {
		return nil, err
	}
	// A profile name the CA lacks is a typo: the policy meant for it
	// would silently apply to nothing.
	named := map[string][]string{"renewal.profiles": o.Policy.Renewal.Profiles}
	for p := range o.Policy.MaxLifetime {
		named["max_lifetime"] = append(named["max_lifetime"], p)
	}
	for p := range o.Policy.ProfileAccess {
		named["profile_access"] = append(named["profile_access"], p)
	}
	for _, field := range slices.Sorted(maps.Keys(named)) {
		for _, p := range named[field] {
			if _, err := o.CA.Profile(p); err != nil {
				return nil, fmt.Errorf("policy: %s: %s", field, core.DetailOf(err))
			}
		}
	}
	a := &Authority{ca: o.CA, policy: o.Policy, defaultProfile: o.DefaultProfile, log: o.Logger, onRevoke: o.OnRevoke}
	if a.defaultProfile == "" {
		a.defaultProfile = "tls-server"
	}
	if _, err := o.CA.Profile(a.defaultProfile); err != nil {
		return nil, fmt.Errorf("default profile: %s", core.DetailOf(err))
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return a, nil
}

// Request asks for a certificate on behalf of Principal.
type Request struct {
	// CSR is a parsed request; use ParseCSR for bytes from a client.
	CSR       *x509.CertificateRequest
	Profile   string        // zero: the default profile
	Lifetime  time.Duration // zero: the profile's default
	ExtraSANs []string      // only if policy allows
	Issuer    string        // zero: the default issuer
	// Principal says who asks: "apikey:<id>", "mtls:<subject>",
	// "acme:<endpoint>/<account>", "console:<user>".
	Principal string
	// Limits narrow what Principal may ask for (an API key's names and
	// profiles). Nil: only the policy.
	Limits *Limits
	// Admin: Principal holds the admin scope, which minting an API
	// credential (a CredentialProfile certificate) needs.
	Admin bool
}

// CredentialProfile is the profile of client certificates for this CA's own
// REST API: the common name of one picks its scopes (api.client_cert_scopes)
// and no name limit covers a common name, so issuing one is creating a
// credential, as `ca apikey create` is. It needs an admin credential
// without limits (FullAdmin), whatever policy.profile_access grants.
const CredentialProfile = "api-client"

// ParseCSR parses a DER CSR: garbage is KindMalformed. The signature is
// checked by Issue and DryRun (once: a bad signature is KindBadCSR).
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, core.Errorf(core.KindMalformed, "empty CSR")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		// crypto/x509's reasons are about structure ("unsupported elliptic
		// curve"), safe and useful to the client.
		return nil, core.Wrap(core.KindMalformed, err, csrParseDetail(err))
	}
	return csr, nil
}

// Issue checks req against policy and issues the certificate. The CSR's
// signature is checked here, once.
func (a *Authority) Issue(ctx context.Context, req Request) (*ca.Issued, error) {
	creq, err := a.check(req)
	if err != nil {
		a.log.InfoContext(ctx, "issuance refused by policy", "principal", req.Principal, "profile", req.Profile, "reason", core.DetailOf(err))
		a.ca.Refused(cmp.Or(req.Profile, a.defaultProfile))
		return nil, err
	}
	return a.ca.Issue(ctx, creq)
}

// DryRunResult is what Issue would do.
type DryRunResult struct {
	Allowed bool   // policy and lints both pass
	Reason  string // why not, when !Allowed
	// Draft is the certificate that would be signed (signed by a
	// throwaway key) and its lint findings; nil if policy refused.
	Draft *ca.Draft
}

// DryRun runs the policy checks and builds and lints the certificate,
// without reserving, storing or signing. A policy refusal is reported in the
// result; only malformed input and internal failures are errors.
func (a *Authority) DryRun(ctx context.Context, req Request) (*DryRunResult, error) {
	creq, err := a.check(req)
	if err != nil {
		return refusedDraft(err)
	}
	d, err := a.ca.DryRun(ctx, creq)
	if err != nil {
		return refusedDraft(err)
	}
	res := &DryRunResult{Allowed: true, Draft: d}
	if bad := d.Findings.Refusals(); len(bad) > 0 {
		res.Allowed, res.Reason = false, "certificate refused by lints: "+strings.Join(bad, ", ")
	}
	return res, nil
}

// refusedDraft is a dry run's answer to err: a decision (not allowed, and
// why) when policy or the CA refuses the request, the error itself when
// the request cannot be read (malformed) or nothing could decide it now
// (internal, unavailable: no issuer can sign, the HSM is sealed), so that
// a client that checks first is told to retry as issuing would tell it.
func refusedDraft(err error) (*DryRunResult, error) {
	switch core.KindOf(err) {
	case core.KindInternal, core.KindMalformed, core.KindUnavailable:
		return nil, err
	}
	return &DryRunResult{Reason: core.DetailOf(err)}, nil
}

// ProfileOf is the profile a request naming profile gets: the default
// profile for "".
func (a *Authority) ProfileOf(profile string) string { return cmp.Or(profile, a.defaultProfile) }

// check applies policy and returns the request for the CA.
func (a *Authority) check(req Request) (ca.Request, error) {
	if req.CSR == nil {
		return ca.Request{}, core.Errorf(core.KindMalformed, "no CSR")
	}
	if req.Profile == "" {
		req.Profile = a.defaultProfile
	}
	prof, err := a.ca.Profile(req.Profile)
	if err != nil {
		return ca.Request{}, err
	}
	if !a.policy.mayUse(req.Principal, prof.Name) {
		return ca.Request{}, core.Errorf(core.KindForbidden, "%s may not use profile %s", principalLabel(req.Principal), prof.Name)
	}
	if prof.Name == CredentialProfile && !FullAdmin(req.Limits, req.Admin) {
		return ca.Request{}, core.Errorf(core.KindForbidden, "an %s certificate is an API credential (its common name picks its scopes): issuing one needs an admin credential without name or profile limits", prof.Name)
	}
	if err := CheckCSRSignature(req.CSR); err != nil {
		return ca.Request{}, err
	}
	if err := a.checkKey(req.CSR.PublicKey, prof); err != nil {
		return ca.Request{}, err
	}
	if err := checkCSRText(req.CSR, req.ExtraSANs); err != nil {
		return ca.Request{}, err
	}
	max := a.maxLifetime(prof)
	if req.Lifetime < 0 || req.Lifetime > max {
		return ca.Request{}, core.Errorf(core.KindRejected, "lifetime %s is over the maximum %s for profile %s", req.Lifetime, max, prof.Name)
	}
	if req.Lifetime == 0 && prof.DefaultLifetime > max {
		req.Lifetime = max
	}
	extra := slices.Clone(req.ExtraSANs)
	if len(extra) > 0 && !a.policy.AllowExtraSANs {
		return ca.Request{}, core.Errorf(core.KindRejected, "policy does not allow extra SANs")
	}
	csr := req.CSR
	// A CSR naming its host only in the common name (openssl req -subj
	// /CN=host.example): the name becomes a SAN, checked like any other.
	if cn := strings.ToLower(csr.Subject.CommonName); len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) == 0 &&
		ca.HostLike(cn) {
		extra = append(extra, cn)
	}
	ids := namesToCheck(csr, extra, prof.Name)
	creq := ca.Request{CSR: csr, Profile: prof.Name, Issuer: req.Issuer, Lifetime: req.Lifetime,
		ExtraSANs: extra, Requester: req.Principal, CSRChecked: true}
	if req.Limits.limitsNames() {
		creq.CommonNameRefusal = req.Limits.commonNameRefusal
	}
	if err := a.checkNames(req.Issuer, ids); err != nil {
		// The default issuer's name constraints refused a name, but a
		// request naming no issuer may go to another (a code-signing
		// intermediate for a code-signing profile): its constraints are
		// the ones that count.
		is := ""
		if req.Issuer == "" {
			is = a.ca.IssuerFor(creq)
		}
		if is == "" || is == a.ca.DefaultIssuer() {
			return ca.Request{}, err
		}
		if err := a.checkNames(is, ids); err != nil {
			return ca.Request{}, err
		}
	}
	if err := req.Limits.check(prof.Name, ids); err != nil {
		return ca.Request{}, err
	}
	return creq, nil
}

// namesToCheck lists the names policy and limits check for a certificate
// of profile made from csr plus extra: the names it will carry, and a
// common name that reads as a host but is not among them.
func namesToCheck(csr *x509.CertificateRequest, extra []string, profile string) []Identifier {
	ids := identifiersOf(csr, extra)
	if cn := commonNameToCheck(csr, ids, profile); cn != "" {
		ids = append(ids, identifierOf(cn))
	}
	return ids
}

// commonNameToCheck returns the CSR's common name when it reads as a host
// name or address, an email address or a URI, and is not among the
// certificate's names: the profiles copy the common name as it is, and
// services that authorize TLS clients by it (nginx's $ssl_client_s_dn,
// PostgreSQL's cert auth, Kafka, VPNs mapping a certificate to a user)
// would otherwise take a tls-client certificate for another team's host
// or user, or for a name the policy denies (found by security reviews). It
// is checked like a name, not added as one. A credential's common name is
// a principal name (its issuance needs an unlimited admin), and a name that
// reads as none of those (alice, "Build Bot") is free text.
func commonNameToCheck(csr *x509.CertificateRequest, ids []Identifier, profile string) string {
	cn := nameLike(csr.Subject.CommonName)
	if profile == CredentialProfile || cn == "" {
		return ""
	}
	for _, id := range ids {
		if strings.EqualFold(id.Value, cn) {
			return ""
		}
	}
	return cn
}

// nameLike returns a common name that reads as a host name or address
// (lower-cased: its case does not matter), an email address or a URI, as
// it is checked; "" for free text (alice, "Build Bot", "postgres x.corp").
func nameLike(cn string) string {
	if strings.Contains(cn, "://") || (strings.Count(cn, "@") == 1 && !strings.ContainsAny(cn, " \t")) {
		return cn
	}
	if cn = strings.ToLower(cn); ca.HostLike(cn) {
		return cn
	}
	return ""
}

// checkNames applies the name policy and the name constraints of issuer's
// chain to the names a certificate will carry (identifiersOf). The CA passes every name to its template as text, and
// the certificate gets each as the type its text says (x509util.SplitSANs),
// whatever SAN type the CSR declared; so each is checked as that type too:
// an IP address sent as a DNS SAN is an IP, a DNS name sent as an email or
// a scheme-less URI SAN is a DNS name.
func (a *Authority) checkNames(issuer string, ids []Identifier) error {
	if len(ids) > a.policy.MaxNames {
		return core.Errorf(core.KindRejected, "%d names, policy allows at most %d", len(ids), a.policy.MaxNames)
	}
	return a.checkIDs(issuer, ids)
}

// identifiersOf lists the names a certificate for csr plus extra carries.
func identifiersOf(csr *x509.CertificateRequest, extra []string) []Identifier {
	var ids []Identifier
	for _, n := range csr.DNSNames {
		ids = append(ids, identifierOf(n))
	}
	for _, ip := range csr.IPAddresses {
		ids = append(ids, identifierOf(ip.String()))
	}
	for _, e := range csr.EmailAddresses {
		ids = append(ids, identifierOf(e))
	}
	for _, u := range csr.URIs {
		ids = append(ids, identifierOf(u.String()))
	}
	for _, e := range extra {
		ids = append(ids, identifierOf(e))
	}
	return ids
}

// identifierOf classifies a name as the certificate will carry it, in
// x509util.SplitSANs's order: an IP address, a URI with a scheme, an email
// (has "@"), else a DNS name.
func identifierOf(s string) Identifier {
	if net.ParseIP(s) != nil {
		return Identifier{Type: "ip", Value: s}
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() != "" {
		// fd00::1%eth0 is no URI with scheme fd00: checkIDs refuses it
		// as the IP address it is.
		return Identifier{Type: "ip", Value: s}
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return Identifier{Type: "uri", Value: s}
	}
	if strings.Contains(s, "@") {
		return Identifier{Type: "email", Value: s}
	}
	return Identifier{Type: "dns", Value: s}
}

// Revoke revokes serial with an RFC 5280 reason and an optional invalidity
// date (zero: none) on behalf of who. The front end has already checked that
// who may revoke it. keyCompromise here is a claim, not a proof: the key is
// not blocked (RevokeAndBlockKey), as Boulder leaves a subscriber's
// account-signed keyCompromise, since blocking would let anyone who may
// revoke one certificate revoke every certificate of its key.
func (a *Authority) Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, invalidity time.Time, who string) error {
	if _, err := core.ReasonFromCode(int(reason)); err != nil {
		return err
	}
	return a.revoke(ctx, serial, reason, who, func() error { return a.ca.Revoke(ctx, serial, reason, invalidity) })
}

// RevokeAndBlockKey revokes serial for keyCompromise and blocks its key:
// nothing is issued for the key again, and every other unexpired
// certificate with it is revoked for keyCompromise too, at once. Only for
// who proved it holds the key (an ACME request signed by it) or is trusted
// with every certificate (an operator, an admin credential). A certificate
// revoked for keyCompromise already just has its key blocked.
func (a *Authority) RevokeAndBlockKey(ctx context.Context, serial core.Serial, invalidity time.Time, who string) error {
	if err := a.revoke(ctx, serial, core.ReasonKeyCompromise, who, func() error { return a.ca.RevokeAndBlockKey(ctx, serial, invalidity) }); err != nil {
		return err
	}
	if n, err := a.SweepBlockedKeys(ctx); err != nil {
		a.log.ErrorContext(ctx, "revoking the other certificates of a compromised key (the periodic sweep retries)", "err", err, "revoked", n)
	}
	return nil
}

func (a *Authority) revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, who string, record func() error) error {
	if err := record(); err != nil {
		return err
	}
	a.log.InfoContext(ctx, "revocation", "serial", string(serial), "reason", reason.String(), "principal", who)
	rec, err := a.ca.Certificate(ctx, serial)
	if err != nil {
		a.log.ErrorContext(ctx, "revocation recorded, but reading it back for the event failed", "serial", string(serial), "err", err)
		return nil
	}
	if IsCA(rec) {
		// One of this CA's issuers, perhaps: it stops issuing now, not at
		// the next periodic check.
		if err := a.ca.CheckIssuers(ctx); err != nil {
			a.log.ErrorContext(ctx, "a CA certificate was revoked, but checking the issuers failed", "serial", string(serial), "err", err)
		}
	}
	if a.onRevoke != nil {
		a.onRevoke(ctx, rec.IssuerID, serial)
	}
	return nil
}

// Certificate returns the stored record of serial.
func (a *Authority) Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error) {
	return a.ca.Certificate(ctx, serial)
}

func principalLabel(p string) string {
	if p == "" {
		return "this client"
	}
	return fmt.Sprintf("%q", p)
}
