package ca

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	zutil "github.com/zmap/zlint/v3/util"

	"github.com/strongroom-pki/strongroom/core"
)

// NameConstraints are a CA certificate's RFC 5280 §4.2.1.10 name
// constraints: the subtrees of names its certificates, and those of every
// CA below it, may carry (permitted) and may not (excluded). A type of name
// with no permitted subtree is not limited by them. A root or intermediate
// made with them (ca init, ca issuer add --permit/--exclude) cannot be
// turned into a CA for other names, whoever holds its key: relying parties
// (browsers, Go, OpenSSL, GnuTLS, Windows) refuse a certificate below it
// with a name outside them.
//
// The pipeline refuses, before anything is reserved or signed, a name its
// issuer's chain does not allow, with the strictest reading the common
// verifiers have, so that what it issues validates everywhere:
//   - dns:corp.internal covers corp.internal and every name under it
//     (a wildcard *.corp.internal is under it); an excluded subtree also
//     refuses a wildcard one label above it (*.corp.internal covers
//     secret.corp.internal). An empty excluded DNS subtree excludes them all.
//   - ip:10.0.0.0/8 covers the addresses of the prefix.
//   - email:corp.example permits mailboxes at exactly that host,
//     email:.corp.example mailboxes at hosts under it, and
//     email:alice@corp.example that mailbox.
//   - uri:corp.internal permits URIs whose host is exactly that host,
//     uri:.corp.internal hosts under it. A URI with no host, or an IP
//     address as host, is outside any URI constraint (Go and OpenSSL refuse
//     it).
//   - Excluded email and URI hosts without a leading dot also cover the
//     hosts under them, as Go reads them.
type NameConstraints struct {
	PermittedDNS, ExcludedDNS     []string
	PermittedIP, ExcludedIP       []netip.Prefix
	PermittedEmail, ExcludedEmail []string
	PermittedURI, ExcludedURI     []string
}

// ParseNameConstraints reads subtrees written type:value — dns:corp.internal,
// ip:10.0.0.0/8, email:corp.example, uri:.corp.internal — into permitted
// and excluded constraints. Errors say what is wrong with which subtree.
func ParseNameConstraints(permit, exclude []string) (NameConstraints, error) {
	var nc NameConstraints
	for _, set := range []struct {
		verb string
		in   []string
		dns  *[]string
		ip   *[]netip.Prefix
		mail *[]string
		uri  *[]string
	}{
		{"permit", permit, &nc.PermittedDNS, &nc.PermittedIP, &nc.PermittedEmail, &nc.PermittedURI},
		{"exclude", exclude, &nc.ExcludedDNS, &nc.ExcludedIP, &nc.ExcludedEmail, &nc.ExcludedURI},
	} {
		for _, s := range set.in {
			kind, v, ok := strings.Cut(strings.TrimSpace(s), ":")
			bad := func(why string) error {
				return core.Errorf(core.KindMalformed, "%s %q: %s", set.verb, s, why)
			}
			if !ok {
				return nc, bad("write it type:value (dns:corp.internal, ip:10.0.0.0/8, email:corp.example, uri:corp.internal)")
			}
			switch strings.ToLower(kind) {
			case "dns":
				v = strings.ToLower(v)
				if strings.HasPrefix(v, ".") {
					return nc, bad("a DNS subtree covers the name and every name under it: write it without the leading dot")
				}
				if v == "" && set.verb == "permit" {
					return nc, bad("an empty DNS subtree covers every name; leave it out to permit every name")
				}
				if v != "" && !constraintHost(v) {
					return nc, bad("not a DNS name")
				}
				if _, err := netip.ParseAddr(v); err == nil {
					return nc, bad("an address: write it ip:" + v + "/32")
				}
				*set.dns = append(*set.dns, v)
			case "ip":
				p, err := netip.ParsePrefix(v)
				if err != nil {
					return nc, bad("not an address prefix (10.0.0.0/8, fd00::/8; 0.0.0.0/0 and ::/0 exclude every address)")
				}
				if p.Addr().Is4In6() {
					return nc, bad("an IPv4-mapped IPv6 prefix matches no IPv4 address: write the IPv4 prefix (10.0.0.0/8)")
				}
				if p.Masked() != p {
					return nc, bad(fmt.Sprintf("host bits are set: write %s", p.Masked()))
				}
				*set.ip = append(*set.ip, p)
			case "email":
				local, host, hasAt := strings.Cut(v, "@")
				if !hasAt {
					host, local = v, ""
				}
				if (hasAt && local == "") || !constraintHost(strings.TrimPrefix(host, ".")) || strings.ContainsAny(local, " @\"\\") {
					return nc, bad("want a host (corp.example), a domain's hosts (.corp.example) or a mailbox (alice@corp.example)")
				}
				if hasAt {
					local += "@"
				}
				host = strings.ToLower(host)
				*set.mail = append(*set.mail, local+host)
				if set.verb == "exclude" {
					// OpenSSL, GnuTLS and NSS read an excluded host as that
					// host only, Go as the hosts under it too; and an
					// excluded mailbox's local part with case (NSS without):
					// write what each needs.
					if !hasAt && !strings.HasPrefix(host, ".") {
						*set.mail = append(*set.mail, "."+host)
					}
					if hasAt && strings.ToLower(local) != local {
						*set.mail = append(*set.mail, strings.ToLower(local)+host)
					}
				}
			case "uri":
				v = strings.ToLower(v)
				if set.verb == "exclude" {
					// GnuTLS enforces no URI constraint, and refuses every
					// URI SAN below a CA with an excluded one.
					return nc, bad("GnuTLS refuses every URI SAN below a CA with an excluded URI subtree: permit the URI hosts allowed instead")
				}
				h := strings.TrimPrefix(v, ".")
				if _, err := netip.ParseAddr(h); err == nil {
					return nc, bad("URI constraints name hosts, not addresses (RFC 5280)")
				}
				if !constraintHost(h) || !zutil.IsFQDN(h) {
					return nc, bad("want a fully qualified host (corp.internal) or a domain's hosts (.corp.internal): URI constraints name the URI's host (RFC 5280)")
				}
				*set.uri = append(*set.uri, v)
			default:
				return nc, bad("unknown type " + kind + ": use dns, ip, email or uri")
			}
		}
	}
	for _, l := range []*[]string{&nc.PermittedDNS, &nc.ExcludedDNS, &nc.PermittedEmail, &nc.ExcludedEmail, &nc.PermittedURI, &nc.ExcludedURI} {
		*l = dedupe(*l)
	}
	nc.PermittedIP, nc.ExcludedIP = dedupe(nc.PermittedIP), dedupe(nc.ExcludedIP)
	return nc, nil
}

// dedupe drops repeated values, keeping the first of each.
func dedupe[T comparable](vs []T) []T {
	seen := map[T]bool{}
	return slices.DeleteFunc(vs, func(v T) bool {
		if seen[v] {
			return true
		}
		seen[v] = true
		return false
	})
}

// constraintHost reports whether s is a DNS name made of letters, digits,
// hyphens and underscores, as name constraints hold them.
func constraintHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || strings.IndexFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) >= 0 {
			return false
		}
	}
	return true
}

// IsZero reports whether nc constrains nothing.
func (nc NameConstraints) IsZero() bool {
	return len(nc.PermittedDNS)+len(nc.ExcludedDNS)+len(nc.PermittedIP)+len(nc.ExcludedIP)+
		len(nc.PermittedEmail)+len(nc.ExcludedEmail)+len(nc.PermittedURI)+len(nc.ExcludedURI) == 0
}

// String lists the subtrees as ParseNameConstraints reads them:
// "permit dns:corp.internal, exclude ip:0.0.0.0/0".
func (nc NameConstraints) String() string {
	permit, exclude := nc.Subtrees()
	var out []string
	for _, p := range permit {
		out = append(out, "permit "+p)
	}
	for _, x := range exclude {
		out = append(out, "exclude "+x)
	}
	return strings.Join(out, ", ")
}

// Subtrees lists the permitted and the excluded subtrees as
// ParseNameConstraints reads them (dns:corp.internal, ip:10.0.0.0/8).
func (nc NameConstraints) Subtrees() (permit, exclude []string) {
	typed := func(kind string, vs []string) []string {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = kind + ":" + v
		}
		return out
	}
	permit = slices.Concat(typed("dns", nc.PermittedDNS), typed("ip", prefixes(nc.PermittedIP)),
		typed("email", nc.PermittedEmail), typed("uri", nc.PermittedURI))
	exclude = slices.Concat(typed("dns", nc.ExcludedDNS), typed("ip", prefixes(nc.ExcludedIP)),
		typed("email", nc.ExcludedEmail), typed("uri", nc.ExcludedURI))
	return permit, exclude
}

// apply writes nc into a CA certificate's template, marked critical as
// RFC 5280 requires.
func (nc NameConstraints) apply(t *x509.Certificate) {
	if nc.IsZero() {
		return
	}
	t.PermittedDNSDomainsCritical = true
	t.PermittedDNSDomains, t.ExcludedDNSDomains = nc.PermittedDNS, nc.ExcludedDNS
	t.PermittedIPRanges, t.ExcludedIPRanges = ipNets(nc.PermittedIP), ipNets(nc.ExcludedIP)
	t.PermittedEmailAddresses, t.ExcludedEmailAddresses = nc.PermittedEmail, nc.ExcludedEmail
	t.PermittedURIDomains, t.ExcludedURIDomains = nc.PermittedURI, nc.ExcludedURI
}

func ipNets(ps []netip.Prefix) []*net.IPNet {
	var out []*net.IPNet
	for _, p := range ps {
		ip := p.Addr().AsSlice()
		out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(p.Bits(), len(ip)*8)})
	}
	return out
}

// NameConstraintsOf reads a certificate's name constraints.
func NameConstraintsOf(c *x509.Certificate) NameConstraints {
	return NameConstraints{
		PermittedDNS: lowered(c.PermittedDNSDomains), ExcludedDNS: lowered(c.ExcludedDNSDomains),
		PermittedIP: prefixesOf(c.PermittedIPRanges), ExcludedIP: prefixesOf(c.ExcludedIPRanges),
		PermittedEmail: c.PermittedEmailAddresses, ExcludedEmail: c.ExcludedEmailAddresses,
		PermittedURI: lowered(c.PermittedURIDomains), ExcludedURI: lowered(c.ExcludedURIDomains),
	}
}

func lowered(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}

func prefixesOf(ns []*net.IPNet) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range ns {
		addr, ok := netip.AddrFromSlice(n.IP)
		ones, _ := n.Mask.Size()
		if ok {
			out = append(out, netip.PrefixFrom(addr, ones))
		}
	}
	return out
}

// Check returns why a name of kind dns, ip, email or uri (as ra and ACME
// name identifiers) is outside nc, or "" when nc allows it.
func (nc NameConstraints) Check(kind, name string) string {
	switch kind {
	case "dns":
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		return checkSubtrees("DNS", name, nc.PermittedDNS, nc.ExcludedDNS, dnsWithin, dnsMeets)
	case "ip":
		addr, err := netip.ParseAddr(name)
		if err != nil {
			return "is not an IP address"
		}
		in := func(p netip.Prefix) bool { return p.Contains(addr.Unmap()) }
		if len(nc.PermittedIP) > 0 && !slices.ContainsFunc(nc.PermittedIP, in) {
			return "is outside the permitted IP ranges " + joinPrefixes(nc.PermittedIP)
		}
		if i := slices.IndexFunc(nc.ExcludedIP, in); i >= 0 {
			return "is inside the excluded IP range " + nc.ExcludedIP[i].String()
		}
		return ""
	case "email":
		if !nc.IsZero() && !dotAtomMailbox(name) {
			return "is not a plain mailbox (its local part must be dot-atom: no quotes, escapes, comments or empty parts), which Go cannot read below a CA with name constraints"
		}
		return checkSubtrees("email", name, nc.PermittedEmail, nc.ExcludedEmail,
			func(m, tree string) bool { return emailMatch(m, tree, false) },
			func(m, tree string) bool { return emailMatch(m, tree, true) })
	case "uri":
		if len(nc.PermittedURI)+len(nc.ExcludedURI) == 0 {
			return ""
		}
		u, err := url.Parse(name)
		if err != nil || u.Hostname() == "" {
			return "has no host, so URI name constraints cannot allow it"
		}
		if _, err := netip.ParseAddr(u.Hostname()); err == nil {
			return "has an IP address as its host, which URI name constraints cannot allow"
		}
		if u.User != nil || !strings.EqualFold(opensslURIHost(name), u.Hostname()) {
			return "is read by OpenSSL with another host than " + u.Hostname() + " (userinfo, or a query, fragment or ':' without a path before it), so URI name constraints cannot allow it"
		}
		return checkSubtrees("URI", strings.ToLower(u.Hostname()), nc.PermittedURI, nc.ExcludedURI, hostWithin, hostMeets)
	}
	return ""
}

func joinPrefixes(ps []netip.Prefix) string { return strings.Join(prefixes(ps), ", ") }

func prefixes(ps []netip.Prefix) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}

// checkSubtrees applies permitted (within) and excluded (meets) subtrees.
func checkSubtrees(what, name string, permitted, excluded []string, within, meets func(name, tree string) bool) string {
	if len(permitted) > 0 && !slices.ContainsFunc(permitted, func(t string) bool { return within(name, t) }) {
		return fmt.Sprintf("is outside the permitted %s subtrees %s", what, strings.Join(permitted, ", "))
	}
	if i := slices.IndexFunc(excluded, func(t string) bool { return meets(name, t) }); i >= 0 {
		return fmt.Sprintf("is inside the excluded %s subtree %q", what, excluded[i])
	}
	return ""
}

// dnsUnder reports whether name is tree or under it ("" is everything's).
func dnsUnder(name, tree string) bool {
	return tree == "" || name == tree || strings.HasSuffix(name, "."+tree)
}

// dnsWithin: every name name covers (a wildcard covers one label under its
// base) is in tree.
func dnsWithin(name, tree string) bool {
	return dnsUnder(strings.TrimPrefix(name, "*."), tree)
}

// dnsMeets: some name name covers is in tree.
func dnsMeets(name, tree string) bool {
	if base, ok := strings.CutPrefix(name, "*."); ok {
		_, parent, _ := strings.Cut(tree, ".")
		return dnsUnder(base, tree) || parent == base
	}
	return dnsUnder(name, tree)
}

// hostWithin applies a permitted URI or email host constraint as RFC 5280
// reads it (and OpenSSL): "host" is that host exactly, ".domain" the hosts
// under domain.
func hostWithin(host, tree string) bool {
	if sub, ok := strings.CutPrefix(tree, "."); ok {
		return strings.HasSuffix(host, "."+sub)
	}
	return host == tree
}

// hostMeets applies an excluded URI or email host constraint with the
// widest reading: Go's, where "host" also covers the hosts under it.
func hostMeets(host, tree string) bool {
	return hostWithin(host, tree) || !strings.HasPrefix(tree, ".") && strings.HasSuffix(host, "."+tree)
}

// emailMatch applies an email constraint to a mailbox: a mailbox
// constraint matches it exactly (the domain without case; an excluded
// one's local part without case too, as NSS reads it), a host one by
// hostWithin (permitted) or hostMeets (excluded).
func emailMatch(mailbox, tree string, excluded bool) bool {
	local, host, ok := strings.Cut(mailbox, "@")
	if !ok {
		return false
	}
	host = strings.ToLower(host)
	if tl, th, isBox := strings.Cut(tree, "@"); isBox {
		return (local == tl || excluded && strings.EqualFold(local, tl)) && host == strings.ToLower(th)
	}
	if excluded {
		return hostMeets(host, tree)
	}
	return hostWithin(host, tree)
}

// dotAtomMailbox reports whether s is local@domain with a dot-atom local
// part (RFC 5322 atext separated by single dots: no quotes, escapes,
// comments or empty parts). Go cannot read any other email SAN below a CA
// with name constraints, and refuses the chain.
func dotAtomMailbox(s string) bool {
	local, _, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return false
	}
	for _, part := range strings.Split(local, ".") {
		if part == "" || strings.IndexFunc(part, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r))
		}) >= 0 {
			return false
		}
	}
	return true
}

// opensslURIHost is the host OpenSSL reads from a URI under name
// constraints: after "//", up to the first ':', or else the first '/'.
func opensslURIHost(uri string) string {
	_, rest, ok := strings.Cut(uri, "//")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		return rest[:i]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// sanName is one name of a certificate, of kind dns, ip, email or uri.
type sanName struct{ kind, value string }

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// certNames lists the names a certificate made from template t carries,
// as verifiers check them against name constraints: its SANs — those of a
// subjectAltName extension the template adds raw when it has one (it
// replaces the fields when the certificate is made) — and a common name
// that reads as a host, as the address or DNS name it is, and an IPv4
// address also as a DNS name when there is no DNS SAN (OpenSSL and GnuTLS
// read it as one then).
func certNames(t *x509.Certificate) ([]sanName, error) {
	dns, ips, emails, uris := t.DNSNames, t.IPAddresses, t.EmailAddresses, make([]string, len(t.URIs))
	for i, u := range t.URIs {
		uris[i] = u.String()
	}
	for _, e := range t.ExtraExtensions {
		if e.Id.Equal(oidSubjectAltName) {
			var err error
			if dns, ips, emails, uris, err = parseSANExtension(e.Value); err != nil {
				return nil, err
			}
		}
	}
	var out []sanName
	add := func(kind string, vs ...string) {
		for _, v := range vs {
			out = append(out, sanName{kind, v})
		}
	}
	add("dns", dns...)
	for _, ip := range ips {
		add("ip", ip.String())
	}
	add("email", emails...)
	add("uri", uris...)
	if cn := t.Subject.CommonName; HostLike(cn) {
		addr, err := netip.ParseAddr(cn)
		switch {
		case err != nil:
			add("dns", strings.ToLower(cn))
		case addr.Is4() && len(dns) == 0:
			add("ip", cn)
			add("dns", cn)
		default:
			add("ip", cn)
		}
	}
	return out, nil
}

// parseSANExtension reads a subjectAltName extension's value: its DNS
// names, addresses, email addresses and URIs (other kinds of name are not
// subject to the constraints Strongroom writes).
func parseSANExtension(v []byte) (dns []string, ips []net.IP, emails, uris []string, err error) {
	bad := core.Errorf(core.KindRejected, "the profile's subjectAltName extension is not readable DER")
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(v, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, nil, nil, nil, bad
	}
	for rest := seq.Bytes; len(rest) > 0; {
		var gn asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
			return nil, nil, nil, nil, bad
		}
		if gn.Class != asn1.ClassContextSpecific {
			return nil, nil, nil, nil, bad
		}
		switch gn.Tag {
		case 1:
			emails = append(emails, string(gn.Bytes))
		case 2:
			dns = append(dns, string(gn.Bytes))
		case 6:
			uris = append(uris, string(gn.Bytes))
		case 7:
			if len(gn.Bytes) != net.IPv4len && len(gn.Bytes) != net.IPv6len {
				return nil, nil, nil, nil, bad
			}
			ips = append(ips, net.IP(gn.Bytes))
		}
	}
	return dns, ips, emails, uris, nil
}

// CertificateRefusal says why nc refuses a certificate made from template
// t (see certNames), or "" when it allows it.
func (nc NameConstraints) CertificateRefusal(t *x509.Certificate) string {
	names, err := certNames(t)
	if err != nil {
		return core.DetailOf(err)
	}
	for _, n := range names {
		if why := nc.Check(n.kind, n.value); why != "" {
			return fmt.Sprintf("%q %s", n.value, why)
		}
	}
	return ""
}
