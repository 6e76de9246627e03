package ra

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/net/idna"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// Policy is what may be issued. Every field documents its zero value.
type Policy struct {
	// AllowedDNSSuffixes: a DNS name is allowed if it equals one of these
	// or ends with "." + one. Zero: every DNS name (minus the denied).
	AllowedDNSSuffixes []string `yaml:"allowed_dns_suffixes"`
	// DeniedDNSSuffixes win over allowed ones. Zero: none denied.
	DeniedDNSSuffixes []string `yaml:"denied_dns_suffixes"`
	// AllowedIPRanges lists the prefixes IP SANs must fall in. Zero: no IP
	// SANs at all.
	AllowedIPRanges []netip.Prefix `yaml:"allowed_ip_ranges"`
	// AllowWildcards permits "*.suffix" names (a full leftmost label
	// only). Zero: wildcards refused.
	AllowWildcards bool `yaml:"allow_wildcards"`
	// AllowEmailSANs, AllowURISANs permit those SAN types (any value).
	// Zero: refused, unless the lists below allow some.
	AllowEmailSANs bool `yaml:"allow_email_sans"`
	AllowURISANs   bool `yaml:"allow_uri_sans"`
	// AllowedURIPrefixes allows the URI SANs under one of these prefixes
	// (urisans.go): spiffe://corp.internal/ns/team-a allows
	// spiffe://corp.internal/ns/team-a/sa/web, not …/ns/team-ab. Set, it
	// is the rule for URI SANs whatever AllowURISANs says. Zero: none.
	AllowedURIPrefixes []string `yaml:"allowed_uri_prefixes"`
	// AllowedEmailDomains allows the email SANs whose domain equals or is
	// under one of these. Set, it is the rule for email SANs whatever
	// AllowEmailSANs says. Zero: none.
	AllowedEmailDomains []string `yaml:"allowed_email_domains"`
	// KeyTypes lists the subject key types accepted anywhere (profiles may
	// narrow it): p256, p384, p521, rsa2048, rsa3072, rsa4096, ed25519.
	// Zero: all of them but p521.
	KeyTypes []string `yaml:"key_types"`
	// MaxLifetime caps the lifetime per profile name, below the profile's
	// own maximum. Zero or missing: the profile's maximum.
	MaxLifetime map[string]time.Duration `yaml:"max_lifetime"`
	// ProfileAccess lists, per profile, the principals that may use it:
	// exact ("apikey:3f2a…") or prefix patterns ending in "*"
	// ("acme:default/*", "*"); a key's patterns cover its use in the web
	// console too ("console:apikey:ID"). A profile not listed: open to every
	// principal if it is one of tls-server, tls-client,
	// tls-server-client; closed otherwise (code signing, sub-CAs and OCSP
	// responders must be granted explicitly).
	ProfileAccess map[string][]string `yaml:"profile_access"`
	// AllowExtraSANs permits requests to add SANs beyond the CSR's
	// (still checked like the CSR's). Zero: refused.
	AllowExtraSANs bool `yaml:"allow_extra_sans"`
	// MaxNames caps the SANs of one certificate. Zero: 100.
	MaxNames int `yaml:"max_names"`
	// Renewal says which certificates may renew themselves (renew.go).
	// Zero: the TLS and api-client profiles may.
	Renewal RenewalPolicy `yaml:"renewal"`
}

var (
	defaultKeyTypes    = []string{"p256", "p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"}
	knownKeyTypes      = []string{"p256", "p384", "p521", "rsa2048", "rsa3072", "rsa4096", "ed25519"}
	openByDefault      = []string{"tls-server", "tls-client", "tls-server-client"}
	maxDNSNameLength   = 253
	maxDNSLabelLength  = 63
	defaultMaxSANCount = 100
)

// normalize validates the policy and fills in defaults.
func (p *Policy) normalize() error {
	if len(p.KeyTypes) == 0 {
		p.KeyTypes = defaultKeyTypes
	}
	for _, k := range p.KeyTypes {
		if !slices.Contains(knownKeyTypes, k) {
			return fmt.Errorf("policy: unknown key type %q", k)
		}
	}
	clean := func(list []string, what string) ([]string, error) {
		out := make([]string, 0, len(list))
		for _, orig := range list {
			s, err := ParseDNSSuffix(orig)
			if err != nil {
				return nil, fmt.Errorf("policy: %s DNS suffix %q is not a DNS name (letters, digits, hyphens and dots; no wildcard)", what, orig)
			}
			out = append(out, s)
		}
		return out, nil
	}
	var err error
	if p.AllowedDNSSuffixes, err = clean(p.AllowedDNSSuffixes, "allowed"); err != nil {
		return err
	}
	if p.DeniedDNSSuffixes, err = clean(p.DeniedDNSSuffixes, "denied"); err != nil {
		return err
	}
	for i, s := range p.AllowedURIPrefixes {
		if p.AllowedURIPrefixes[i], err = ParseURIPrefix(s); err != nil {
			return fmt.Errorf("policy: allowed_uri_prefixes: %w", err)
		}
	}
	for i, s := range p.AllowedEmailDomains {
		if p.AllowedEmailDomains[i], err = ParseEmailDomain(s); err != nil {
			return fmt.Errorf("policy: allowed_email_domains: %w", err)
		}
	}
	for prof, d := range p.MaxLifetime {
		if d <= 0 {
			return fmt.Errorf("policy: max lifetime of %s must be positive", prof)
		}
	}
	if p.MaxNames < 0 {
		return fmt.Errorf("policy: max_names %d is negative", p.MaxNames)
	}
	if p.MaxNames == 0 {
		p.MaxNames = defaultMaxSANCount
	}
	return nil
}

// mayUse reports whether principal may use profile. An API key used in
// the web console ("console:apikey:ID") may use what the key may
// ("apikey:ID", "apikey:*"): it is the same credential. A pattern may
// still name the console's form to grant a profile there only.
func (p *Policy) mayUse(principal, profile string) bool {
	pats, ok := p.ProfileAccess[profile]
	if !ok {
		return slices.Contains(openByDefault, profile)
	}
	cred := strings.TrimPrefix(principal, ConsolePrefix)
	for _, pat := range pats {
		if matchPrincipal(pat, principal) || matchPrincipal(pat, cred) {
			return true
		}
	}
	return false
}

// ConsolePrefix begins the principal of what a credential does in the
// web console ("console:apikey:ID").
const ConsolePrefix = "console:"

// matchPrincipal: pat is principal, or a prefix of it ending in "*".
func matchPrincipal(pat, principal string) bool {
	return pat == principal || (strings.HasSuffix(pat, "*") && strings.HasPrefix(principal, strings.TrimSuffix(pat, "*")))
}

// CheckKey applies the key policy of profile (zero: the default profile)
// to a subject public key: the check Issue makes, for a front end that
// must refuse a key before it commits to issuing (ACME finalize). A
// refused key is KindBadKey, an unknown profile KindRejected.
func (a *Authority) CheckKey(profile string, pub crypto.PublicKey) error {
	prof, err := a.ca.Profile(cmp.Or(profile, a.defaultProfile))
	if err != nil {
		return err
	}
	return a.checkKey(pub, prof)
}

// minRSAExponent: the CA/B Forum BRs (§6.1.6) want the exponent in
// 2^16+1 … 2^256-1; zlint warns below it and the CA refuses warnings, so
// the key is refused here, as a key, rather than by a lint.
const minRSAExponent = 65537

func (a *Authority) checkKey(pub crypto.PublicKey, prof ca.Profile) error {
	kt := ca.KeyType(pub)
	if k, ok := pub.(*rsa.PublicKey); ok {
		if k.N.BitLen() < 2048 {
			return core.Errorf(core.KindBadKey, "RSA keys need at least 2048 bits, this one has %d", k.N.BitLen())
		}
		if k.E < minRSAExponent || k.E%2 == 0 {
			return core.Errorf(core.KindBadKey, "RSA public exponent %d is refused: it must be odd and at least %d", k.E, minRSAExponent)
		}
	}
	if kt == "" {
		if k, ok := pub.(*ecdsa.PublicKey); ok {
			return core.Errorf(core.KindBadKey, "ECDSA keys on curve %s are not supported: use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return core.Errorf(core.KindBadKey, "keys of type %T are not supported: use an ECDSA (P-256, P-384 or P-521), RSA or Ed25519 key", pub)
	}
	if !slices.Contains(a.policy.KeyTypes, kt) || !slices.Contains(prof.KeyTypes, kt) {
		return core.Errorf(core.KindBadKey, "%s keys are not accepted for profile %s", kt, prof.Name)
	}
	return nil
}

func hasSuffix(name, suffix string) bool {
	return name == suffix || strings.HasSuffix(name, "."+suffix)
}

// checkDNS checks one DNS name (lowercase) against syntax and policy and
// returns a client-safe reason, or "".
func (p *Policy) checkDNS(name string) string {
	if len(name) == 0 || len(name) > maxDNSNameLength {
		return "is not a valid DNS name (length)"
	}
	base := name
	if strings.HasPrefix(name, "*.") {
		if !p.AllowWildcards {
			return "is a wildcard, and policy does not allow wildcards"
		}
		base = name[2:]
	}
	if net.ParseIP(base) != nil {
		// It would be an IP SAN in the certificate (x509util.SplitSANs),
		// which the IP ranges, not the DNS suffixes, must allow.
		return "is an IP address, not a DNS name"
	}
	labels := strings.Split(base, ".")
	if len(labels) < 2 {
		return "is not a fully qualified DNS name"
	}
	if why := badLabels(labels); why != "" {
		return why
	}
	// 127.1, 1.2.3 and 011.1.2.3 are not IP addresses to Go, but
	// inet_aton-style resolvers read them as ones; no top-level domain is
	// all digits (RFC 3696 §2).
	if numericTLD(labels) {
		return "is not a DNS name: its last label is all digits, and resolvers would read it as an IP address"
	}
	for _, d := range p.DeniedDNSSuffixes {
		if hasSuffix(base, d) || (base != name && hasSuffix(d, base) && d != base) {
			return "is under a denied DNS suffix"
		}
	}
	if len(p.AllowedDNSSuffixes) == 0 {
		return ""
	}
	for _, a := range p.AllowedDNSSuffixes {
		if hasSuffix(base, a) {
			if base != name && base == a && !strings.Contains(a, ".") {
				return "is a wildcard directly under a top-level suffix"
			}
			return ""
		}
	}
	return "is outside the allowed DNS suffixes"
}

// ParseDNSSuffix returns s as a DNS name other names may be under
// (lowercase, without a leading dot), or refuses it: LDH labels, no
// wildcard, at most 253 characters.
func ParseDNSSuffix(s string) (string, error) {
	n := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), ".")
	labels := strings.Split(n, ".")
	if n == "" || len(n) > maxDNSNameLength || badLabels(labels) != "" || numericTLD(labels) {
		return "", core.Errorf(core.KindMalformed, "%q is not a DNS name (letters, digits, hyphens and dots, not ending in an all-digit label; no wildcard)", s)
	}
	return n, nil
}

// numericTLD: the last label is all digits, which no top-level domain is
// (RFC 3696 §2) and which reads as part of an IP address (1.2.3.4 under
// "4", 127.0.0.1 under "0.1").
func numericTLD(labels []string) bool {
	return strings.Trim(labels[len(labels)-1], "0123456789") == ""
}

// badLabels says why labels are not DNS labels (LDH, IDNs in A-label
// form), or "".
func badLabels(labels []string) string {
	for _, l := range labels {
		if len(l) == 0 || len(l) > maxDNSLabelLength || l[0] == '-' || l[len(l)-1] == '-' {
			return "is not a valid DNS name"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "is not a valid DNS name (only letters, digits and hyphens; IDNs in A-label form)"
			}
		}
		if strings.HasPrefix(l, "xn--") && !validALabel(l) {
			return "is not a valid DNS name: " + l + " is not a valid IDN A-label"
		}
	}
	return ""
}

// validALabel reports whether l, which starts with "xn--", is an IDNA2008
// A-label (RFC 5890 §2.3.2.1): its punycode decodes, under the strict
// registration profile (NFC, bidi and joiner rules, no disallowed code
// point), to a U-label that encodes back to l, and the U-label has only
// lowercase letters, marks, digits and hyphens, which RFC 5892 derives
// PVALID from (x/net/idna follows UTS #46, which also lets symbols such as
// emoji through). The contextual code points (ZWJ, ZWNJ, middle dot…)
// are refused too: stricter than IDNA2008, and rare in names a private CA
// sees.
func validALabel(l string) bool {
	u, err := idna.Registration.ToUnicode(l)
	if err != nil {
		return false
	}
	if a, err := idna.Registration.ToASCII(u); err != nil || a != l {
		return false
	}
	for _, r := range u {
		if r != '-' && !unicode.In(r, unicode.Ll, unicode.Lo, unicode.Lm, unicode.Mn, unicode.Mc, unicode.Nd) {
			return false
		}
	}
	return true
}

// checkIP checks an IP SAN against the allowed ranges.
func (p *Policy) checkIP(a netip.Addr) string {
	a = a.Unmap()
	for _, r := range p.AllowedIPRanges {
		if r.Contains(a) {
			return ""
		}
	}
	if len(p.AllowedIPRanges) == 0 {
		return "is an IP address, and policy allows none"
	}
	return "is outside the allowed IP ranges"
}
