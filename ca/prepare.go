package ca

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.step.sm/crypto/x509util"

	"github.com/strongroom-pki/strongroom/core"
)

// prepare checks the request against the profile and issuer and builds the
// template (everything but the serial).
func (c *CA) prepare(req Request) (*prepared, error) {
	p, err := c.render(req)
	if err != nil {
		return nil, err
	}
	is, t := p.issuer, p.tmpl
	if err := is.checkNames(t); err != nil {
		return nil, err
	}
	nb := c.now().Add(-c.backdate).UTC().Truncate(time.Second)
	t.NotBefore, t.NotAfter = nb, nb.Add(p.life)
	if ia := is.NotAfter(); t.NotAfter.After(ia) {
		return nil, core.Errorf(core.KindRejected, "lifetime %s would outlive issuer %s's chain (until %s)", p.life, is.ID(), ia.Format(time.RFC3339))
	}
	t.IssuingCertificateURL = ExpandURLs(c.urls.CAIssuers, is.ID())
	if !p.profile.NoRevocationInfo {
		t.OCSPServer = ExpandURLs(c.urls.OCSP, is.ID())
		t.CRLDistributionPoints = ExpandURLs(c.urls.CRL, is.ID())
	}
	// RFC 5280 §4.2.1.2 asks for an SKI in every certificate (method 1);
	// BR 7.1.2.7.6 says NOT RECOMMENDED in TLS server leaves. Follow each
	// where it applies.
	t.SubjectKeyId = nil
	if t.IsCA || !slices.Contains(t.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		if t.SubjectKeyId, err = subjectKeyID(t.PublicKey); err != nil {
			return nil, core.Wrap(core.KindBadKey, err, "the CSR's public key cannot be encoded")
		}
	}
	if t.Subject.CommonName == "" && len(t.Subject.Names) == 0 && len(t.Subject.Organization) == 0 {
		t.Subject = pkix.Name{}
	}
	return p, nil
}

// IssuerFor is the id of the issuer that would sign req: the one it names,
// else the default, else the first usable intermediate whose extended key
// usage allows the profile's (a code-signing intermediate beside the TLS
// default). "" when req is refused before an issuer is chosen. It builds
// the certificate from the profile to learn its usage, so policy calls it
// only when the default issuer's name constraints refuse a name.
func (c *CA) IssuerFor(req Request) string {
	p, err := c.render(req)
	if err != nil {
		return ""
	}
	return p.issuer.ID()
}

// render checks the request against the profile, renders the profile's
// template and chooses the issuer: prepare without the issuer's name
// constraints and the validity, URLs and key identifier.
func (c *CA) render(req Request) (*prepared, error) {
	if req.CSR == nil {
		return nil, core.Errorf(core.KindMalformed, "no CSR")
	}
	prof, ok := c.profiles[req.Profile]
	if !ok {
		return nil, core.Errorf(core.KindRejected, "unknown profile %q", req.Profile)
	}
	is, err := c.Issuer(req.Issuer)
	if errors.Is(err, core.ErrNoIssuer) {
		// No usable intermediate allows serverAuth, but one for the
		// profile's usage (code signing) may exist: the extended key
		// usage step below chooses, or answers ErrNoIssuer.
		alt := c.issuerForEKU(nil)
		if alt == "" {
			return nil, err
		}
		is, err = c.issuers[alt], nil
	}
	if err != nil {
		return nil, core.Errorf(core.KindRejected, "unknown issuer %q", req.Issuer)
	}
	// Only an issuer the request names can be revoked here: the default
	// is never a revoked one.
	if c.issuerRevoked(is.ID()) {
		return nil, core.Because(core.ErrIssuerRevoked, fmt.Sprintf("issuer %s's certificate is revoked", is.ID()))
	}
	if end := is.NotAfter(); !end.After(c.now()) {
		return nil, core.Errorf(core.KindUnavailable, "issuer %s's chain expired at %s: it issues nothing more (renew its certificate, or make another issuer the default)", is.ID(), end.UTC().Format(time.RFC3339))
	}
	if !req.CSRChecked {
		if err := req.CSR.CheckSignature(); err != nil {
			return nil, core.Wrap(core.KindBadCSR, err, "the CSR's signature does not verify")
		}
	}
	kt := KeyType(req.CSR.PublicKey)
	if kt == "" || !slices.Contains(prof.KeyTypes, kt) {
		return nil, core.Errorf(core.KindBadKey, "profile %s does not accept %s keys (allowed: %s)", prof.Name, keyName(kt), joinComma(prof.KeyTypes))
	}
	if prof.CA {
		if err := checkCAKey(req.CSR.PublicKey); err != nil {
			return nil, err
		}
		// RFC 5280 §4.2.1.9: a pathLenConstraint of 0 allows no CA below.
		if ic := is.Certificate(); ic.MaxPathLen == 0 && ic.MaxPathLenZero {
			return nil, core.Errorf(core.KindRejected, "issuer %s may not issue CA certificates (path length)", is.ID())
		}
	}
	life := req.Lifetime
	if life == 0 {
		life = prof.DefaultLifetime
	}
	if life > prof.MaxLifetime {
		return nil, core.Errorf(core.KindRejected, "lifetime %s is over profile %s's maximum %s", life, prof.Name, prof.MaxLifetime)
	}
	// A certificate starts backdate in the past and its validity period is
	// the lifetime, so a lifetime of 30s would be expired when handed out.
	if least := c.backdate + minUsable; life < least {
		return nil, core.Errorf(core.KindRejected, "lifetime %s is under the minimum %s: certificates start %s in the past (issuance.backdate) and must stay usable for at least %s",
			life, least, c.backdate, minUsable)
	}
	names, err := sansOf(req.CSR, req.ExtraSANs)
	if err != nil {
		return nil, err
	}
	t, cnInSANs, err := prof.build(req.CSR, names)
	if err != nil {
		return nil, err
	}
	if cn := t.Subject.CommonName; cn != "" && req.CommonNameRefusal != nil &&
		!slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, cn) }) {
		if why := req.CommonNameRefusal(cn); why != "" {
			return nil, core.Errorf(core.KindForbidden, "%s", why)
		}
	}
	// A profile's extended key usage must be within the issuer chain's,
	// or verifiers that chain it refuse the certificate. A request naming
	// no issuer goes to the first usable one whose chain allows it (a
	// code-signing intermediate beside the TLS default).
	if why := is.EKURefusal(t.ExtKeyUsage); why != "" {
		if req.Issuer != "" {
			hint := "name another issuer, or none"
			if c.issuerForEKU(t.ExtKeyUsage) == "" {
				hint = "make an intermediate for it: ca issuer add ID --eku " + ekuFlag(t.ExtKeyUsage)
			}
			return nil, core.Errorf(core.KindRejected, "profile %s from issuer %s: %s; %s", prof.Name, is.ID(), why, hint)
		}
		alt := c.issuerForEKU(t.ExtKeyUsage)
		switch {
		case alt != "":
			is = c.issuers[alt]
		case c.DefaultIssuer() == "":
			// Nothing usable allows the usage, and the TLS default is
			// gone too: the CA's state, not the request.
			return nil, core.ErrNoIssuer
		default:
			return nil, core.Errorf(core.KindRejected, "profile %s: %s, and no intermediate allows it; make one for it: ca issuer add ID --eku %s (requests naming no issuer then go to it)",
				prof.Name, why, ekuFlag(t.ExtKeyUsage))
		}
	}
	// A TLS server profile writes the CN only when it is one of the SANs.
	// A host name left out of them would vanish from the certificate
	// without a word; the requester meant it, so say so.
	if orig := req.CSR.Subject.CommonName; !cnInSANs && t.Subject.CommonName == "" && HostLike(orig) {
		return nil, core.Errorf(core.KindBadCSR, "the CSR's common name %q is not among its subject alternative names; add it as a SAN (a certificate's common name must be one of its SANs)", orig)
	}
	if len(t.DNSNames)+len(t.IPAddresses)+len(t.EmailAddresses)+len(t.URIs) == 0 && t.Subject.CommonName == "" && len(t.Subject.Organization) == 0 {
		if orig := req.CSR.Subject.CommonName; orig != "" {
			return nil, core.Errorf(core.KindBadCSR, "the request names nothing usable: it has no SANs, and its common name %q is not a DNS name or IP address", orig)
		}
		return nil, core.Errorf(core.KindBadCSR, "the request names nothing (no SANs, no common name)")
	}
	return &prepared{issuer: is, profile: prof, tmpl: t, names: names, life: life}, nil
}

// build renders the profile's template for csr, whose certificate carries
// names (sansOf), and says whether the CSR's common name is among them. A
// template whose certificate is a CA while the profile is not marked ca
// (or the reverse) is refused: only a ca profile has its issuer's path
// length and the CA key rules checked.
func (p *Profile) build(csr *x509.CertificateRequest, names []string) (*x509.Certificate, bool, error) {
	data := x509util.NewTemplateData()
	// The subject CN, if any, must be one of the SANs, as the SAN is
	// written (names are lowercased: a CN of UP.EXAMPLE is up.example).
	// An address stays a SAN only: a common name holding one reads as a
	// DNS name to OpenSSL below name constraints, and zlint refuses a
	// private one in the subject.
	cn := csr.Subject.CommonName
	i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, cn) })
	cnInSANs := i >= 0
	if cnInSANs && net.ParseIP(cn) == nil {
		cn = names[i]
	} else {
		cn = ""
	}
	data.SetCommonName(cn)
	data.SetSANs(names)
	base := &x509.Certificate{PublicKey: csr.PublicKey, PublicKeyAlgorithm: csr.PublicKeyAlgorithm,
		Subject: csr.Subject, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses,
		EmailAddresses: csr.EmailAddresses, URIs: csr.URIs}
	xc, err := x509util.NewCertificateFromX509(base, withCompiled(p, data))
	if err != nil {
		return nil, cnInSANs, core.Errorf(core.KindRejected, "profile %s cannot build this certificate: %v", p.Name, err)
	}
	t := xc.GetCertificate()
	for _, e := range t.ExtraExtensions {
		// The CA checks (path length, CA keys, this switch) read the
		// template's basicConstraints; a raw one would pass them by.
		if e.Id.Equal(oidBasicConstraints) {
			return nil, cnInSANs, core.Errorf(core.KindRejected, "profile %s sets basicConstraints as a raw extension; set it with the template's basicConstraints field (and ca: true for a CA profile)", p.Name)
		}
	}
	switch {
	case t.IsCA && !p.CA:
		return nil, cnInSANs, core.Errorf(core.KindRejected, "profile %s makes a CA certificate (basicConstraints isCA) but is not marked ca: true; nothing is issued from it", p.Name)
	case !t.IsCA && p.CA:
		return nil, cnInSANs, core.Errorf(core.KindRejected, "profile %s is marked ca: true but its template makes no CA certificate (basicConstraints isCA); nothing is issued from it", p.Name)
	}
	return t, cnInSANs, nil
}

var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// errExecuting begins the error of a template whose execution failed
// (as opposed to one whose output is not a certificate).
const errExecuting = "executing template"

// withCompiled runs the profile's parsed template (x509util.WithTemplate
// would parse it, and build the sprig function map, on every call).
func withCompiled(p *Profile, data x509util.TemplateData) x509util.Option {
	return func(cr *x509.CertificateRequest, o *x509util.Options) error {
		var buf bytes.Buffer
		data.SetCertificateRequest(cr)
		if err := p.tmpl.Execute(&buf, data); err != nil {
			return fmt.Errorf("%s: %w", errExecuting, err)
		}
		o.CertBuffer = &buf
		return nil
	}
}

// sansOf merges the CSR's SANs with extra ones, deduplicated, as template

func sansOf(csr *x509.CertificateRequest, extra []string) ([]string, error) {
	var names []string
	for _, n := range csr.DNSNames {
		names = append(names, strings.ToLower(n))
	}
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, csr.EmailAddresses...)
	for _, u := range csr.URIs {
		names = append(names, u.String())
	}
	for _, e := range extra {
		// A SAN is an IA5String (RFC 5280 §4.2.1.6): a CSR's are checked
		// when it is parsed; x509 would refuse a non-ASCII extra one only
		// when building, or percent-encode it into a certificate it then
		// cannot parse.
		if e == "" || strings.IndexFunc(e, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			return nil, core.Errorf(core.KindMalformed, "extra SAN %q is not a name (printable ASCII, no spaces)", e)
		}
		if ip := net.ParseIP(e); ip == nil && !strings.Contains(e, "@") && !strings.Contains(e, "://") {
			e = strings.ToLower(e)
		} else if strings.Contains(e, "://") {
			if _, err := url.Parse(e); err != nil {
				return nil, core.Errorf(core.KindMalformed, "extra SAN %q is not a URI", e)
			}
		}
		names = append(names, e)
	}
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

func keyName(kt string) string {
	if kt == "" {
		return "unsupported"
	}
	return kt
}

// minUsable is the least time an issued certificate stays valid after it
// is issued (step-ca's default minimum TLS certificate duration).
const minUsable = 5 * time.Minute

// HostLike reports whether a subject common name reads as a host name or
// an IP address (web.example.com, 10.1.2.3) rather than a person's or a
// service's name: it is what openssl req -subj /CN=host puts there.
func HostLike(cn string) bool {
	if strings.ContainsAny(cn, " @/") {
		return false
	}
	_, err := netip.ParseAddr(cn)
	// IDNA maps the ideographic and fullwidth full stops to "." (UTS #46),
	// so a name written with them reads as a host to some software.
	return strings.ContainsAny(cn, ".\u3002\uff0e\uff61") || err == nil
}
