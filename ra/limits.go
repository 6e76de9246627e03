package ra

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/strongroom-pki/strongroom/core"
)

// Limits narrow what one credential may ask for, inside the policy: the
// names its certificates may carry and the profiles it may use, as a Vault
// PKI role's allowed_domains or a step-ca provisioner's policy do. A deploy
// key for one team gets its team's DNS suffix and nothing else.
type Limits struct {
	// DNSSuffixes: each DNS SAN must equal one or sit below it (a
	// wildcard's base likewise). IPRanges: each IP SAN must fall in one.
	// URIPrefixes (as ParseURIPrefix returns them): each URI SAN must sit
	// under one. EmailDomains: each email SAN's domain must equal one or
	// sit below it. With any of them set, a SAN of a type with none is
	// refused.
	DNSSuffixes  []string
	IPRanges     []netip.Prefix
	URIPrefixes  []string
	EmailDomains []string
	// Profiles the credential may use (policy's profile access applies
	// too). Zero: any the policy allows it.
	Profiles []string
}

// ParseLimits reads names (DNS suffixes, IP prefixes, URI prefixes and
// @email-domains, as given to `ca apikey create --names`) and profile
// names. Nothing given: nil, no limit.
func ParseLimits(names, profiles []string) (*Limits, error) {
	var l Limits
	for _, n := range names {
		n = strings.TrimSpace(n)
		if strings.Contains(n, "://") {
			p, err := ParseURIPrefix(n)
			if err != nil {
				return nil, core.Errorf(core.KindMalformed, "name limit %s", err)
			}
			l.URIPrefixes = append(l.URIPrefixes, p)
			continue
		}
		if strings.HasPrefix(n, "@") {
			d, err := ParseEmailDomain(n)
			if err != nil {
				return nil, core.Errorf(core.KindMalformed, "name limit %s", err)
			}
			l.EmailDomains = append(l.EmailDomains, d)
			continue
		}
		n = strings.ToLower(n)
		if n == "" {
			continue
		}
		if p, err := netip.ParsePrefix(n); err == nil {
			l.IPRanges = append(l.IPRanges, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(n); err == nil {
			l.IPRanges = append(l.IPRanges, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		n = strings.TrimPrefix(n, ".")
		if badLabels(strings.Split(n, ".")) != "" || !strings.Contains(n, ".") && n != "localhost" || len(n) > maxDNSNameLength {
			return nil, core.Errorf(core.KindMalformed, "name limit %q is not a DNS suffix (team.corp.internal), an IP prefix (10.20.0.0/16), a URI prefix (spiffe://corp.internal/ns/team) or an email domain (@team.corp.internal)", n)
		}
		l.DNSSuffixes = append(l.DNSSuffixes, n)
	}
	for _, p := range profiles {
		if p = strings.TrimSpace(p); p != "" {
			l.Profiles = append(l.Profiles, p)
		}
	}
	if !l.limitsNames() && len(l.Profiles) == 0 {
		return nil, nil
	}
	return &l, nil
}

// Names is the name limits as ParseLimits reads them (DNS suffixes, IP
// prefixes, URI prefixes, then @email-domains).
func (l *Limits) Names() []string {
	if l == nil {
		return nil
	}
	out := slices.Clone(l.DNSSuffixes)
	for _, p := range l.IPRanges {
		out = append(out, p.String())
	}
	out = append(out, l.URIPrefixes...)
	for _, d := range l.EmailDomains {
		out = append(out, "@"+d)
	}
	return out
}

func (l *Limits) limitsNames() bool {
	return l != nil && len(l.DNSSuffixes)+len(l.IPRanges)+len(l.URIPrefixes)+len(l.EmailDomains) > 0
}

// allows reports whether one identifier is inside the limits, with a
// client-safe reason when not.
func (l *Limits) allows(id Identifier) (bool, string) {
	if !l.limitsNames() {
		return true, ""
	}
	var ok bool
	switch id.Type {
	case "dns":
		n := strings.TrimPrefix(strings.ToLower(id.Value), "*.")
		ok = slices.ContainsFunc(l.DNSSuffixes, func(s string) bool { return hasSuffix(n, s) })
	case "ip":
		if a, err := netip.ParseAddr(id.Value); err == nil {
			ok = slices.ContainsFunc(l.IPRanges, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) })
		}
	case "uri":
		ok = uriUnder(id.Value, l.URIPrefixes)
	case "email":
		ok = emailUnder(id.Value, l.EmailDomains)
	default:
		return false, fmt.Sprintf("this credential may not ask for %s %s", id.Type, id.Value)
	}
	if !ok {
		return false, fmt.Sprintf("%s is outside this credential's names (%s)", id.Value, strings.Join(l.Names(), ", "))
	}
	return true, ""
}

// check applies the limits to a request's profile and names.
func (l *Limits) check(profile string, ids []Identifier) error {
	if l == nil {
		return nil
	}
	if len(l.Profiles) > 0 && !slices.Contains(l.Profiles, profile) {
		return core.Errorf(core.KindForbidden, "this credential may not use profile %s (limited to %s)", profile, strings.Join(l.Profiles, ", "))
	}
	for _, id := range ids {
		if ok, why := l.allows(id); !ok {
			return core.Errorf(core.KindForbidden, "%s", why)
		}
	}
	return nil
}

// commonNameRefusal says why a certificate for a credential kept to
// names may not carry cn, which is none of the certificate's names, as its
// common name. A host name, address, email or URI there has been checked
// against the names like a SAN (namesToCheck); free text ("postgres",
// "postgres x.team-a.corp.internal") is refused, since services that take
// a client certificate's common name as a user name (PostgreSQL, Kafka's
// principal rules) would take it for another team's user.
func (l *Limits) commonNameRefusal(cn string) string {
	if nameLike(cn) != "" {
		return ""
	}
	return fmt.Sprintf("the certificate's common name %q is not a host name, address, email or URI; a credential kept to names (%s) may put only one of them there, or leave it out",
		cn, strings.Join(l.Names(), ", "))
}

// checkRenewal applies the limits to a renewal of a certificate of
// profile with names ids and common name cn, as a new request meets them:
// the profile and names here, a common name that is none of the names when
// its certificate is built (commonNameRefusal).
func (l *Limits) checkRenewal(profile string, ids []Identifier, cn string) error {
	if err := l.check(profile, ids); err != nil || !l.limitsNames() || cn == "" ||
		slices.ContainsFunc(ids, func(id Identifier) bool { return strings.EqualFold(id.Value, cn) }) {
		return err
	}
	if why := l.commonNameRefusal(cn); why != "" {
		return core.Errorf(core.KindForbidden, "%s", why)
	}
	return nil
}

// CheckIdentifiers refuses each identifier outside the names limits with
// an *IdentifierError (ACME's rejectedIdentifier subproblems); nil when all
// are inside.
func (l *Limits) CheckIdentifiers(ids []Identifier) error {
	var e IdentifierError
	for _, id := range ids {
		if ok, why := l.allows(id); !ok {
			e.Problems = append(e.Problems, IdentifierProblem{Identifier: id, Detail: why})
		}
	}
	if len(e.Problems) > 0 {
		return &e
	}
	return nil
}

// Covers reports whether every name of an issued certificate is inside
// the limits: a limited credential may revoke only such certificates. A
// certificate with no names (a CA's, a code-signing one) is inside no name
// limit.
func (l *Limits) Covers(names []string) bool {
	if !l.limitsNames() {
		return true
	}
	if len(names) == 0 {
		return false
	}
	for _, n := range names {
		if ok, _ := l.allows(identifierOf(n)); !ok {
			return false
		}
	}
	return true
}

// MayRevoke says whether a client of a front end (the REST API, the
// console) holding limits l may revoke rec. Never a CA certificate:
// revoking one stops everything it issued from verifying, which is an
// operator's decision on a node (`ca cert revoke --ca`), not an API
// call; nor the node's own certificates. With profile limits, only a
// certificate of those profiles; with name limits, only one whose names
// are all inside them.
func MayRevoke(l *Limits, rec *core.Certificate) error {
	if IsCA(rec) {
		return core.Errorf(core.KindForbidden, "certificate %s is the CA certificate %q: revoke it on a node with `ca cert revoke --ca`", rec.Serial, rec.Subject)
	}
	if strings.HasPrefix(rec.Requester, SystemRequester) {
		// The node's own HTTPS and OCSP responder certificates: revoked
		// through an API, they would go on being served until renewed.
		return core.Errorf(core.KindForbidden, "certificate %s is this CA's own (%s): revoke it on a node with `ca cert revoke`: the node then replaces it (an OCSP responder's at once, the HTTPS listener's within a minute)", rec.Serial, rec.Requester)
	}
	if !MayRead(l, rec) { // front ends answer 404 before asking
		return core.Errorf(core.KindForbidden, "certificate %s is outside this credential's names or profiles", rec.Serial)
	}
	return nil
}

// MayRead reports whether a front end's credential holding limits l may
// see rec: with no limits, every certificate; with profile limits, those
// of its profiles; with name limits, those whose names are all inside
// them. Teams sharing a CA do not read each other's host names.
func MayRead(l *Limits, rec *core.Certificate) bool {
	if l == nil {
		return true
	}
	if len(l.Profiles) > 0 && !slices.Contains(l.Profiles, rec.Profile) {
		return false
	}
	return l.Covers(rec.Names)
}

// SystemRequester begins the requester of the certificates a node issues
// itself (system:https-listener, system:ocsp-responder).
const SystemRequester = "system:"

// FullAdmin says whether a credential of a front end is an admin with no
// name or profile limits: trusted with every certificate and credential.
// It alone may block a key by revoking one of its certificates for
// keyCompromise (blocking revokes every certificate of the key, whoever
// holds it), mint an api-client certificate (its common name picks its API
// scopes, and no name limit covers a common name), manage API keys and
// read the audit log in the console, and use every application's
// key-service keys. An admin limited to names administers those names.
func FullAdmin(l *Limits, admin bool) bool { return admin && l == nil }

// IsCA reports whether rec is a CA certificate (basicConstraints cA).
func IsCA(rec *core.Certificate) bool { return core.IsCA(rec.DER) }
