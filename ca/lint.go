package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"
	zutil "github.com/zmap/zlint/v3/util"

	_ "github.com/zmap/zlint/v3" // registers every lint in zlint's registry
)

// The lint set. Strongroom is a private PKI: its certificates are not in
// browser root programs and are not logged to CT. We run the sources that
// describe what a well-formed certificate is, and skip those that only
// express a root program's or a regime's rules:
//
//	run:  RFC5280, RFC5480, RFC5891, RFC3279, RFC8813 (structure, algorithms,
//	      IDNs), CABF_BR (sane TLS leaf/CA shapes: SANs, key usage, key
//	      sizes, validity), Community (sanity lints)
//	skip: CABF_EV, ETSI_ESI, CABF_SMIME_BR, CABF_CS_BR (certificate types
//	      and regimes we do not issue under), Mozilla, Apple, Chrome (root
//	      programs), RFC6962 (CT)
//
// and exclude individual lints that assume the public web PKI, listed in
// excludedLints with the reason.
//
// Measured by TestLintRegistryProbe (go test -v -run LintRegistryProbe
// ./ca: every lint of the registry over every built-in profile × key type):
// of the skipped sources, CABF_EV, CABF_CS_BR, CABF_SMIME_BR, ETSI_ESI and
// Chrome have no lint that applies to any certificate our profiles make;
// Mozilla, Apple and RFC6962 do apply but state root-program and CT rules
// (Mozilla's encoding checks duplicate RFC5280/RFC5480 lints we run). All the
// cost is in the sources we run: RFC5280 ~150 µs, CABF_BR ~100 µs per
// certificate, and e_rsa_fermat_factorization ~1.2 ms for RSA subject keys
// only — kept, because it catches broken RSA key generators in what we sign.
var lintSources = lint.SourceList{
	lint.RFC5280, lint.RFC5480, lint.RFC5891, lint.RFC3279, lint.RFC8813,
	lint.CABFBaselineRequirements, lint.Community,
}

// excludedLints never changes; it documents each exclusion.
var excludedLints = map[string]string{
	// Checks the issuer key against a list of compromised keys of one public
	// CA (eMudhra): never ours, and it costs ~10 ms per certificate.
	"e_cert_issued_by_compromised_emudhra_ca": "public-CA specific, 10 ms/cert",
	// A baby-step search for ECDSA subject keys with tiny private scalars
	// (a catastrophically broken generator): ~130 µs, a fifth of all lint
	// time here, for a failure no mainstream key generator has.
	"e_ecdsa_small_private_key": "20% of lint time for a near-impossible failure",
	// Private PKIs name hosts under internal suffixes (.internal, .corp,
	// .lan) that are not in the public suffix list; ra's suffix policy
	// decides which names are allowed instead.
	"e_dnsname_not_valid_tld":                                 "private names are not public TLDs",
	"n_subject_common_name_included":                          "notice only",
	"w_subject_common_name_included":                          "CN is allowed in a private PKI (many clients still read it)",
	"e_ca_country_name_missing":                               "country is optional for private CAs (RootOptions.Country)",
	"e_ca_organization_name_missing":                          "organization is optional for private CAs",
	"e_sub_cert_aia_does_not_contain_ocsp_url":                "OCSP is optional (CRLs are always published)",
	"w_sub_cert_aia_does_not_contain_issuing_ca_url":          "AIA caIssuers is present whenever configured",
	"e_sub_cert_crl_distribution_points_does_not_contain_url": "CRL DPs are present whenever configured",
	// The CA/B Forum policy OIDs (2.23.140.1.2.x) assert validation under
	// the Baseline Requirements; a private CA makes no such claim.
	"e_sub_cert_certificate_policies_missing": "no BR policy claim in a private PKI",
	"e_sub_cert_cert_policy_empty":            "no BR policy claim in a private PKI",
	// Private networks are what a private PKI serves: RFC 1918 addresses
	// and internal host names in SANs and in AIA/CRL URLs are expected;
	// ra's IP range and suffix policy decides which are allowed.
	"e_ext_san_contains_reserved_ip": "private addresses are the point of a private PKI",
	// The same for a CA certificate's name constraints: ip:10.0.0.0/8
	// is how a private root or intermediate is kept to its networks.
	"e_ext_nc_intersects_reserved_ip":        "private address ranges are what a private CA is constrained to",
	"w_sub_cert_aia_contains_internal_names": "AIA/CRL URLs point at the CA's internal host",
	// The CA/B Forum's SC-081 schedule shrinks public TLS lifetimes to 200,
	// 100 and 47 days by date. A private PKI sets lifetimes per profile
	// and policy (defaults: 90 days, at most 397, which an operator may
	// raise). The BR's 825-day cap still runs as a backstop; the 398-day
	// cap is Apple's root-program rule (the Apple source, not run), which
	// Apple does not apply below roots a user or administrator added.
	"e_server_cert_valid_time_longer_than_200_days": "public-web lifetime schedule (SC-081)",
	"w_server_cert_valid_time_longer_than_199_days": "public-web lifetime schedule (SC-081)",
	"e_server_cert_valid_time_longer_than_100_days": "public-web lifetime schedule (SC-081)",
	"w_server_cert_valid_time_longer_than_99_days":  "public-web lifetime schedule (SC-081)",
	"e_server_cert_valid_time_longer_than_47_days":  "public-web lifetime schedule (SC-081)",
	"w_server_cert_valid_time_longer_than_46_days":  "public-web lifetime schedule (SC-081)",
	// RFC 5280 SHOULD vs BR 7.1.2.7.6 NOT RECOMMENDED for TLS server
	// leaves: the two lints contradict each other. We follow the BR for
	// serverAuth leaves and put an SKI in every other certificate.
	"w_ext_subject_key_identifier_missing_sub_cert": "contradicts the BR lint; SKI is set on all non-TLS-server certificates",
}

// LintOptions tunes the lint set.
type LintOptions struct {
	// ExtraExcluded names more lints to skip (for example a site-specific
	// rule that does not hold). Zero: only the built-in exclusions.
	ExtraExcluded []string
}

// Linter runs the chosen zlint lints on a to-be-signed certificate. It is
// safe for concurrent use.
type Linter struct {
	lints []*lint.CertificateLint
	// insts are the lints' instances, made (and configured) once: zlint's
	// own CertificateLint.Execute constructs and reflect-configures a new
	// instance on every call, which was half the lint time here (~300
	// lints × ~1 µs). The instances are only read while linting (their
	// fields are set by their constructors and Configure), so they are
	// shared by concurrent calls; the -race concurrent issuance test
	// covers it.
	insts  []lint.LintInterface
	config lint.Configuration
	// throwaway keys by algorithm, made on first use: the copy that is
	// linted is signed by one of them, never by the issuer's key.
	mu        sync.Mutex
	throwaway map[string]crypto.Signer
}

// KnownLint reports whether zlint has a lint named name, so a
// configuration naming one to exclude can be checked where it is read.
func KnownLint(name string) bool { return lint.GlobalRegistry().ByName(name) != nil }

// NewLinter builds the lint registry once.
func NewLinter(o LintOptions) (*Linter, error) {
	excl := make([]string, 0, len(excludedLints)+len(o.ExtraExcluded))
	for n := range excludedLints {
		excl = append(excl, n)
	}
	excl = append(excl, o.ExtraExcluded...)
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lintSources})
	if err != nil {
		return nil, fmt.Errorf("building lint registry: %w", err)
	}
	skip := map[string]bool{}
	for _, n := range excl {
		skip[n] = true
	}
	for _, n := range o.ExtraExcluded {
		if !KnownLint(n) {
			return nil, fmt.Errorf("ca: %q is not a zlint lint (names look like e_sub_cert_aia_missing)", n)
		}
	}
	l := &Linter{config: reg.GetConfiguration(), throwaway: map[string]crypto.Signer{}}
	for _, cl := range reg.CertificateLints().Lints() {
		if !skip[cl.Name] {
			l.lints = append(l.lints, cl)
		}
	}
	sort.Slice(l.lints, func(i, j int) bool { return l.lints[i].Name < l.lints[j].Name })
	for _, cl := range l.lints {
		inst := cl.Lint()
		if err := l.config.MaybeConfigure(inst, cl.Name); err != nil {
			return nil, fmt.Errorf("configuring lint %s: %w", cl.Name, err)
		}
		l.insts = append(l.insts, inst)
	}
	return l, nil
}

// Names lists the lints that run.
func (l *Linter) Names() []string {
	out := make([]string, len(l.lints))
	for i, cl := range l.lints {
		out[i] = cl.Name
	}
	return out
}

// Finding is one lint that did not pass.
type Finding struct {
	Lint    string `json:"lint"`
	Status  string `json:"status"` // "notice", "warn", "error" or "fatal"
	Details string `json:"details,omitempty"`
	refuse  bool
}

// Findings is the outcome of linting one certificate.
type Findings []Finding

// Refusals names the lints whose result refuses issuance: error, warning
// and fatal.
func (f Findings) Refusals() []string {
	var out []string
	for _, x := range f {
		if x.refuse {
			out = append(out, x.Lint+" ("+x.Status+")")
		}
	}
	return out
}

// Lint runs the lints on a DER certificate (signed by anything).
func (l *Linter) Lint(der []byte) (Findings, error) {
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate for linting: %w", err)
	}
	var out Findings
	serverAuth := zutil.IsServerAuthCert(zc)
	for i, cl := range l.lints {
		r := runLint(cl, l.insts[i], zc, serverAuth)
		if r == nil || r.Status < lint.Notice {
			continue
		}
		out = append(out, Finding{Lint: cl.Name, Status: r.Status.String(), Details: r.Details,
			refuse: r.Status >= lint.Warn})
	}
	return out, nil
}

// runLint is zlint's CertificateLint.Execute on a prebuilt instance: the
// same framework filter (BR lints only for serverAuth certificates; the
// other sources with such a filter are not in lintSources), then
// CheckApplies, CheckEffective and Execute, and a panicking lint is a
// fatal result (which refuses issuance) as in zlint.
func runLint(cl *lint.CertificateLint, inst lint.LintInterface, zc *zx509.Certificate, serverAuth bool) (res *lint.LintResult) {
	defer func() {
		if err := recover(); err != nil {
			res = &lint.LintResult{Status: lint.Fatal, Details: fmt.Sprintf("%s panicked: %v", cl.Name, err)}
		}
	}()
	if !cl.OverrideFrameworkFilter && cl.Source == lint.CABFBaselineRequirements && !serverAuth {
		return nil
	}
	if !inst.CheckApplies(zc) || !cl.CheckEffective(zc) {
		return nil
	}
	return inst.Execute(zc)
}

// throwawayFor returns a throwaway key of the same algorithm and size as pub.
func (l *Linter) throwawayFor(pub crypto.PublicKey) (crypto.Signer, error) {
	var name string
	var gen func() (crypto.Signer, error)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		c := k.Curve
		name = "ec-" + c.Params().Name
		gen = func() (crypto.Signer, error) { return ecdsa.GenerateKey(curveOf(c), rand.Reader) }
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		name = fmt.Sprintf("rsa-%d", bits)
		gen = func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
	case ed25519.PublicKey:
		name = "ed25519"
		gen = func() (crypto.Signer, error) {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			return k, err
		}
	default:
		return nil, fmt.Errorf("unsupported issuer key type %T", pub)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.throwaway[name]; ok {
		return s, nil
	}
	s, err := gen()
	if err != nil {
		return nil, fmt.Errorf("making throwaway %s key: %w", name, err)
	}
	l.throwaway[name] = s
	return s, nil
}

func curveOf(c elliptic.Curve) elliptic.Curve {
	switch c.Params().Name {
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return elliptic.P256()
}

// lintCopy builds the certificate from tmpl, signs a copy with a throwaway
// key of the issuer's algorithm, lints it and returns the TBS bytes and the
// findings. parent nil means self-signed.
func lintCopy(l *Linter, tmpl, parent *x509.Certificate, pub, issuerPub crypto.PublicKey) ([]byte, Findings, error) {
	b, err := buildTBS(l, tmpl, parent, pub, issuerPub)
	if err != nil {
		return nil, nil, err
	}
	f, err := l.Lint(b.lintDER)
	return b.tbs, f, err
}

// built is a to-be-signed certificate and its throwaway-signed copy.
type built struct {
	tbs       []byte            // exactly what the HSM will sign
	sigAlgDER []byte            // the AlgorithmIdentifier, as in the TBS
	opts      crypto.SignerOpts // hash (and PSS parameters) for signing
	lintDER   []byte            // tbs signed by a throwaway key of the same algorithm
}

// buildTBS has x509.CreateCertificate encode the TBS — with the issuer's
// public key, so the signature algorithm is the one the issuer will use —
// and captures the bytes it asks to sign (crypto.MessageSigner). The
// capture returns no valid signature, so CreateCertificate stops at its own
// signature check; the encoding is all we take from it. The copy to lint is
// then signed by a throwaway key (sign only: nothing trusts that
// signature).
func buildTBS(l *Linter, tmpl, parent *x509.Certificate, pub, issuerPub crypto.PublicKey) (*built, error) {
	var p x509.Certificate
	if parent != nil {
		p = *parent
	} else {
		p = *tmpl
	}
	// CreateCertificate refuses a signer that does not match the parent's
	// key; the parent's name and key identifier are all the TBS takes from it.
	p.PublicKey = nil
	capt := &tbsCapture{pub: issuerPub}
	_, err := x509.CreateCertificate(rand.Reader, tmpl, &p, pub, capt)
	if capt.tbs == nil {
		if err == nil {
			err = errors.New("the TBS was not captured")
		}
		return nil, fmt.Errorf("building certificate: %w", err)
	}
	b := &built{tbs: capt.tbs, opts: capt.opts}
	if b.sigAlgDER, err = tbsSigAlg(b.tbs); err != nil {
		return nil, err
	}
	tk, err := l.throwawayFor(issuerPub)
	if err != nil {
		return nil, err
	}
	if b.lintDER, err = signTBS(tk, b.tbs, b.sigAlgDER, b.opts); err != nil {
		return nil, fmt.Errorf("signing the copy to lint: %w", err)
	}
	return b, nil
}

// tbsCapture is a crypto.MessageSigner that records what it is asked to
// sign and signs nothing.
type tbsCapture struct {
	pub  crypto.PublicKey
	tbs  []byte
	opts crypto.SignerOpts
}

func (c *tbsCapture) Public() crypto.PublicKey { return c.pub }

func (c *tbsCapture) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("tbsCapture needs crypto.MessageSigner support in crypto/x509")
}

func (c *tbsCapture) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.tbs, c.opts = bytes.Clone(msg), opts
	return []byte{0}, nil
}

// throwawayCert returns the throwaway-signed DER and its TBS.
func throwawayCert(l *Linter, tmpl, parent *x509.Certificate, pub, issuerPub crypto.PublicKey) (der, tbs []byte, err error) {
	b, err := buildTBS(l, tmpl, parent, pub, issuerPub)
	if err != nil {
		return nil, nil, err
	}
	return b.lintDER, b.tbs, nil
}
