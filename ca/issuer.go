package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// Issuer is an issuing CA: its certificate, the chain from it up to the root,
// and the crypto.Signer (an HSM key) that signs for it. It is immutable and
// safe for concurrent use.
type Issuer struct {
	id     string
	chain  []*x509.Certificate // chain[0] is the issuer's own certificate
	signer crypto.Signer
	// sent is chain without self-signed certificates: what is returned
	// after a leaf (the trust anchor is not sent).
	sent []*x509.Certificate
	// constrained are the name constraints of the certificates of chain
	// that carry any.
	constrained []ChainConstraint
}

// NewIssuer checks that signer's public key is the one in chain[0] and that
// every certificate in chain is signed by the next (the last may be a
// self-signed root) and returns the Issuer. id names it in config and in the
// certificates table (for example "intermediate").
func NewIssuer(id string, signer crypto.Signer, chain []*x509.Certificate) (*Issuer, error) {
	if id == "" || strings.ContainsAny(id, "/ \t\n") {
		return nil, fmt.Errorf("issuer id %q must be non-empty without spaces or slashes", id)
	}
	if signer == nil || len(chain) == 0 {
		return nil, fmt.Errorf("issuer %s: a signer and at least its own certificate are required", id)
	}
	if !chain[0].IsCA || !chain[0].BasicConstraintsValid {
		return nil, fmt.Errorf("issuer %s: certificate is not a CA certificate", id)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("issuer %s: the signer's public key does not match the issuer certificate", id)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("issuer %s: chain[%d] is not signed by chain[%d]: %w", id, i, i+1, err)
		}
	}
	c := make([]*x509.Certificate, len(chain))
	copy(c, chain)
	is := &Issuer{id: id, chain: c, signer: signer}
	for _, x := range c {
		if !(bytes.Equal(x.RawIssuer, x.RawSubject) && x.CheckSignatureFrom(x) == nil) {
			is.sent = append(is.sent, x)
		}
		if nc := NameConstraintsOf(x); !nc.IsZero() {
			is.constrained = append(is.constrained, ChainConstraint{Subject: x.Subject.CommonName, NameConstraints: nc})
		}
	}
	return is, nil
}

// NewAnchor is an external root (config ca.root.external): its
// certificate only, with no key here. It is the trust anchor of the
// intermediates whose certificates it signed elsewhere; it signs nothing
// here (Signer is nil, and NewIntermediate refuses it).
func NewAnchor(id string, cert *x509.Certificate) (*Issuer, error) {
	if id == "" || strings.ContainsAny(id, "/ \t\n") {
		return nil, fmt.Errorf("issuer id %q must be non-empty without spaces or slashes", id)
	}
	if cert == nil || !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("root %s: the certificate is not a CA certificate", id)
	}
	if cert.PublicKey == nil {
		return nil, fmt.Errorf("root %s: its key type (%s) is not one Strongroom can verify with (RSA, ECDSA or Ed25519 keys; an RSA key may sign with PSS)", id, cert.PublicKeyAlgorithm)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("root %s: its key usage does not allow signing certificates (keyCertSign)", id)
	}
	// The signature alone: CheckSignatureFrom would refuse a key usage
	// without keyCertSign as a bad signature.
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) || cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		return nil, fmt.Errorf("root %s: the certificate is not self-signed (the file must hold the root itself, not a CA below it)", id)
	}
	is := &Issuer{id: id, chain: []*x509.Certificate{cert}}
	if nc := NameConstraintsOf(cert); !nc.IsZero() {
		is.constrained = append(is.constrained, ChainConstraint{Subject: cert.Subject.CommonName, NameConstraints: nc})
	}
	return is, nil
}

// External reports whether the issuer is an external root (NewAnchor):
// its key is not here.
func (i *Issuer) External() bool { return i.signer == nil }

// NameRefusal says why the name constraints of a certificate in the
// issuer's chain do not allow a name of kind dns, ip, email or uri ("is
// outside the permitted DNS subtrees corp.internal (…)"), or "" when they
// do (see NameConstraints): relying parties would refuse a certificate
// carrying it.
func (i *Issuer) NameRefusal(kind, name string) string {
	for _, c := range i.constrained {
		if why := c.Check(kind, name); why != "" {
			return fmt.Sprintf("%s: issuer %s cannot issue it (name constraints of %q)", why, i.id, c.Subject)
		}
	}
	return ""
}

// SubtreesRefusal says why a CA below the issuer with constraints nc
// would be constrained to names its chain does not allow: a permitted DNS
// subtree or IP range outside the chain's constraints ("" when none). Such
// a CA could issue none of them.
func (i *Issuer) SubtreesRefusal(nc NameConstraints) string {
	for _, t := range nc.PermittedDNS {
		if why := i.NameRefusal("dns", t); why != "" {
			return fmt.Sprintf("permit dns:%s: %q %s", t, t, why)
		}
	}
	for _, p := range nc.PermittedIP {
		for _, a := range []netip.Addr{p.Addr(), lastAddr(p)} {
			if why := i.NameRefusal("ip", a.String()); why != "" {
				return fmt.Sprintf("permit ip:%s: %s %s", p, a, why)
			}
		}
	}
	// An email or URI subtree is judged by a name in it.
	for _, t := range nc.PermittedEmail {
		m := t
		if !strings.Contains(t, "@") {
			m = "postmaster@" + strings.TrimPrefix(t, ".")
			if strings.HasPrefix(t, ".") {
				m = "postmaster@mail" + t
			}
		}
		if why := i.NameRefusal("email", m); why != "" {
			return fmt.Sprintf("permit email:%s: %s %s", t, m, why)
		}
	}
	for _, t := range nc.PermittedURI {
		u := "https://" + t + "/"
		if strings.HasPrefix(t, ".") {
			u = "https://host" + t + "/"
		}
		if why := i.NameRefusal("uri", u); why != "" {
			return fmt.Sprintf("permit uri:%s: %s %s", t, u, why)
		}
	}
	return ""
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		b[bit/8] |= 0x80 >> (bit % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// checkNames applies NameRefusal to every name a certificate made from t
// carries (certNames).
func (i *Issuer) checkNames(t *x509.Certificate) error {
	if len(i.constrained) == 0 {
		return nil
	}
	names, err := certNames(t)
	if err != nil {
		return err
	}
	for _, n := range names {
		if why := i.NameRefusal(n.kind, n.value); why != "" {
			return core.Errorf(core.KindRejected, "%q %s", n.value, why)
		}
	}
	return nil
}

// NameConstraints are the name constraints of the issuer's own
// certificate (zero: none).
func (i *Issuer) NameConstraints() NameConstraints { return NameConstraintsOf(i.chain[0]) }

// ChainConstraint is the name constraints one certificate of an issuer's
// chain carries.
type ChainConstraint struct {
	Subject string // the certificate's common name
	NameConstraints
}

// ChainConstraints are the name constraints of the certificates of the
// issuer's chain that carry any, from the issuer's own up: a name must be
// allowed by each.
func (i *Issuer) ChainConstraints() []ChainConstraint { return slices.Clone(i.constrained) }

// ID is the issuer's name.
func (i *Issuer) ID() string { return i.id }

// Certificate is the issuer's own certificate.
func (i *Issuer) Certificate() *x509.Certificate { return i.chain[0] }

// Chain is the issuer's certificate followed by its parents up to the root.
// The slice is a copy; the certificates are shared and must not be modified.
func (i *Issuer) Chain() []*x509.Certificate {
	c := make([]*x509.Certificate, len(i.chain))
	copy(c, i.chain)
	return c
}

// NotAfter is when the issuer's chain ends: the earliest notAfter of its
// certificates. Nothing it issues may outlive it (under an external root a
// CA above the intermediate can end first).
func (i *Issuer) NotAfter() time.Time {
	end := i.chain[0].NotAfter
	for _, c := range i.chain[1:] {
		if c.NotAfter.Before(end) {
			end = c.NotAfter
		}
	}
	return end
}

// Sent is what follows a leaf of this issuer in a chain handed out: Chain
// without self-signed certificates (the trust anchor is not sent). The
// slice is a copy.
func (i *Issuer) Sent() []*x509.Certificate { return slices.Clone(i.sent) }

// Signer is the HSM-backed signer of the issuer's key (for CRL and OCSP
// signing by their packages); nil for an external root.
func (i *Issuer) Signer() crypto.Signer { return i.signer }

// RootOptions describes a self-signed root certificate.
type RootOptions struct {
	CommonName   string // required
	Organization string // zero: omitted
	// Country is the two-letter ISO 3166 country code. Zero: omitted; the
	// CA/B Forum lint asking for it on CA certificates is not run (see
	// lint.go).
	Country  string
	Lifetime time.Duration    // zero: 20 years
	Now      func() time.Time // zero: time.Now
	// NameConstraints limit the names of every certificate below the
	// root. Zero: none.
	NameConstraints NameConstraints
}

// IntermediateOptions describes an intermediate certificate signed by a
// parent issuer. URL templates may contain {issuer}, replaced by ParentID.
type IntermediateOptions struct {
	CommonName   string // required
	Organization string
	Country      string
	Lifetime     time.Duration    // zero: 10 years (capped at the parent's NotAfter)
	Now          func() time.Time // zero: time.Now
	// ParentID is the id of the parent issuer, used in URL templates; zero:
	// parent.ID().
	ParentID string
	// CAIssuerURLs, OCSPURLs and CRLURLs go into the AIA and CRL
	// distribution point extensions. CRLURLs and CAIssuerURLs are
	// required; zero OCSPURLs: no OCSP URL.
	CAIssuerURLs, OCSPURLs, CRLURLs []string
	// ExtKeyUsage restricts what the intermediate may issue for. Zero:
	// serverAuth and clientAuth. Include CodeSigning or OCSPSigning here if
	// the intermediate issues code-signing or OCSP-signing certificates:
	// verifiers (Go, Windows) require a leaf's EKUs to nest within its
	// issuer's.
	ExtKeyUsage []x509.ExtKeyUsage
	// NameConstraints limit the names of every certificate below the
	// intermediate. Zero: none (the parent's still apply).
	NameConstraints NameConstraints
	// PathLen is how many CAs may follow it below (pathLenConstraint).
	// Zero: none, it issues only end-entity certificates.
	PathLen int
	// RawSubject, if set, is the certificate's subject as DER (an external
	// CA's CSR's), instead of CommonName, Organization and Country.
	RawSubject []byte
}

// NewRoot makes a self-signed root certificate for signer's key: basic
// constraints CA without a path length, key usage certSign+crlSign, no EKU,
// a random 128-bit serial. It is linted (see Linter) before the HSM signs.
func NewRoot(ctx context.Context, signer crypto.Signer, o RootOptions) (*x509.Certificate, error) {
	if o.CommonName == "" {
		return nil, errors.New("root certificate: a common name is required")
	}
	now := nowOf(o.Now)
	life := o.Lifetime
	if life <= 0 {
		life = 20 * 365 * 24 * time.Hour
	}
	ski, err := subjectKeyID(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("root certificate: %w", err)
	}
	tmpl := caTemplate(o.CommonName, o.Organization, o.Country, now, life, ski)
	tmpl.MaxPathLen = -1 // no pathLenConstraint on a root (BR 7.1.2.1)
	o.NameConstraints.apply(tmpl)
	return createCA(ctx, tmpl, nil, signer.Public(), signer)
}

// NewIntermediate makes an intermediate certificate for pub signed by
// parent: CA with pathLenConstraint o.PathLen (0 by default), key usage certSign+crlSign, EKU
// serverAuth+clientAuth (unless o.ExtKeyUsage says otherwise), AIA and CRL
// distribution points when configured. It is linted before the HSM signs.
func NewIntermediate(ctx context.Context, parent *Issuer, pub crypto.PublicKey, o IntermediateOptions) (*x509.Certificate, error) {
	if parent == nil {
		return nil, errors.New("intermediate certificate: a parent issuer is required")
	}
	if parent.External() {
		return nil, fmt.Errorf("intermediate certificate: the key of %s is not here (an external root signs its intermediates itself)", parent.id)
	}
	if o.CommonName == "" {
		return nil, errors.New("intermediate certificate: a common name is required")
	}
	if len(o.CRLURLs) == 0 || len(o.CAIssuerURLs) == 0 {
		// RFC 5280 does not insist, but relying parties cannot check an
		// intermediate's revocation without them (and BR 7.1.2.10 asks).
		return nil, errors.New("intermediate certificate: CRLURLs and CAIssuerURLs are required")
	}
	now := nowOf(o.Now)
	life := o.Lifetime
	if life <= 0 {
		life = 10 * 365 * 24 * time.Hour
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("intermediate certificate: %w", err)
	}
	tmpl := caTemplate(o.CommonName, o.Organization, o.Country, now, life, ski)
	if pa := parent.Certificate().NotAfter; tmpl.NotAfter.After(pa) {
		tmpl.NotAfter = pa
	}
	if o.PathLen < 0 {
		return nil, errors.New("intermediate certificate: a negative path length")
	}
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = o.PathLen, o.PathLen == 0
	tmpl.RawSubject = o.RawSubject
	// anyPolicy: the intermediate is run by the same organisation as the
	// root (BR 7.1.2.10.5, "affiliated"), and leaves carry no policy.
	anyPolicy, err := x509.OIDFromInts([]uint64{2, 5, 29, 32, 0})
	if err != nil {
		return nil, err
	}
	tmpl.Policies = []x509.OID{anyPolicy}
	tmpl.ExtKeyUsage = o.ExtKeyUsage
	if len(tmpl.ExtKeyUsage) == 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	id := o.ParentID
	if id == "" {
		id = parent.ID()
	}
	tmpl.IssuingCertificateURL = ExpandURLs(o.CAIssuerURLs, id)
	tmpl.OCSPServer = ExpandURLs(o.OCSPURLs, id)
	tmpl.CRLDistributionPoints = ExpandURLs(o.CRLURLs, id)
	o.NameConstraints.apply(tmpl)
	return createCA(ctx, tmpl, parent.Certificate(), pub, parent.Signer())
}

func caTemplate(cn, org, country string, now time.Time, life time.Duration, ski []byte) *x509.Certificate {
	nb := now.Add(-time.Minute).UTC().Truncate(time.Second)
	name := pkix.Name{CommonName: cn}
	if org != "" {
		name.Organization = []string{org}
	}
	if country != "" {
		name.Country = []string{country}
	}
	return &x509.Certificate{
		Subject:               name,
		NotBefore:             nb,
		NotAfter:              nb.Add(life),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}
}

// createCA lints the CA certificate on a throwaway-signed copy, then signs
// it with the real signer. parent nil means self-signed.
func createCA(ctx context.Context, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	serial, err := core.NewSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Big()
	if err := checkCAKey(signer.Public()); err != nil {
		return nil, err
	}
	if err := checkCAKey(pub); err != nil {
		return nil, err
	}
	l, err := NewLinter(LintOptions{})
	if err != nil {
		return nil, err
	}
	var tbs []byte
	if parent != nil {
		var findings Findings
		tbs, findings, err = lintCopy(l, tmpl, parent, pub, signer.Public())
		if err != nil {
			return nil, err
		}
		if bad := findings.Refusals(); len(bad) > 0 {
			return nil, core.Errorf(core.KindRejected, "CA certificate refused by lints: %s", strings.Join(bad, ", "))
		}
	}
	p := parent
	if p == nil {
		p = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	if parent == nil {
		// A root's copy cannot be self-signed by a throwaway key without
		// changing its key, and lints recognise a root by its valid
		// self-signature; so the root itself is linted, and discarded
		// if it fails. It has not left this function yet.
		findings, err := l.Lint(der)
		if err != nil {
			return nil, err
		}
		if bad := findings.Refusals(); len(bad) > 0 {
			return nil, core.Errorf(core.KindRejected, "root certificate refused by lints: %s", strings.Join(bad, ", "))
		}
	} else if !bytes.Equal(cert.RawTBSCertificate, tbs) {
		return nil, errors.New("signed CA certificate differs from the linted one")
	}
	return cert, nil
}

// checkCAKey refuses CA keys other than ECDSA P-256/P-384 and RSA ≥ 2048:
// the CA/B Forum profile (which we lint against, and which TLS clients
// implement) allows no others for CAs that issue TLS certificates.
func checkCAKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().Name; n == "P-256" || n == "P-384" {
			return nil
		}
		return core.Errorf(core.KindBadKey, "CA keys on curve %s are not supported (use P-256 or P-384)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return nil
		}
		return core.Errorf(core.KindBadKey, "RSA CA keys need at least 2048 bits, not %d", k.N.BitLen())
	}
	return core.Errorf(core.KindBadKey, "CA keys of type %T are not supported (use ECDSA P-256/P-384 or RSA)", pub)
}

// subjectKeyID is the RFC 5280 §4.2.1.2 method (1) key identifier: SHA-1 of
// the subjectPublicKey BIT STRING.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("decoding public key: %w", err)
	}
	h := sha1.Sum(spki.PublicKey.Bytes)
	return h[:], nil
}

// ExpandURLs is tmpls with {issuer} replaced by issuerID, as certificates
// of that issuer carry them (the CRL builder scopes its CRLs with it).
func ExpandURLs(tmpls []string, issuerID string) []string {
	if len(tmpls) == 0 {
		return nil
	}
	out := make([]string, len(tmpls))
	for i, t := range tmpls {
		out[i] = strings.ReplaceAll(t, "{issuer}", issuerID)
	}
	return out
}

func nowOf(f func() time.Time) time.Time {
	if f == nil {
		return time.Now()
	}
	return f()
}
