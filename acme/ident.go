package acme

import (
	"crypto/x509"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Identifier syntax (RFC 8555 §7.1.4, §9.7.7; RFC 8738). This is only the
// shape of a name; which names are allowed is Policy's decision.

const maxIdentifiers = 100

// normalizeIdentifiers lowercases DNS names, drops duplicates and refuses
// what is not a plausible identifier (IP addresses not in their canonical
// text too), with one subproblem per bad identifier.
func normalizeIdentifiers(in []Identifier) ([]Identifier, error) {
	if len(in) == 0 {
		return nil, malformed("an order needs at least one identifier")
	}
	if len(in) > maxIdentifiers {
		return nil, prob("rejectedIdentifier", http.StatusBadRequest, "too many identifiers (at most 100)")
	}
	var (
		out  []Identifier
		errs []error
		seen = map[Identifier]bool{}
	)
	for _, id := range in {
		n, err := normalizeIdentifier(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(errs) > 0 {
		p := rejected(errors.Join(errs...), "some identifiers are not acceptable")
		unsupported := 0
		for i := range p.Subproblems {
			if strings.HasPrefix(p.Subproblems[i].Detail, "unsupported identifier type") {
				p.Subproblems[i].Type = errNS + "unsupportedIdentifier"
				unsupported++
			}
		}
		if unsupported == len(p.Subproblems) { // §6.7: the top-level type says what is wrong
			p.Type = errNS + "unsupportedIdentifier"
		}
		return nil, p
	}
	return out, nil
}

func normalizeIdentifier(id Identifier) (Identifier, error) {
	bad := func(detail string) error { return &IdentifierError{Identifier: id, Detail: detail} }
	switch id.Type {
	case "dns":
		v := strings.ToLower(id.Value)
		if err := checkDNSName(v); err != "" {
			return id, bad(err)
		}
		return Identifier{Type: "dns", Value: v}, nil
	case "ip":
		a, err := netip.ParseAddr(id.Value)
		if err != nil {
			return id, bad("not an IP address")
		}
		if a.Zone() != "" {
			return id, bad("an IP address with a zone (%" + a.Zone() + ") cannot be an identifier: give the address without the zone")
		}
		if a.Is4In6() { // RFC 8738 §3: the IPv4 textual form; not silently rewritten
			return id, bad("an IPv4-mapped IPv6 address: use the IPv4 address " + a.Unmap().String())
		}
		if a.String() != id.Value { // RFC 8738 §3: RFC 5952 §4 text; not silently rewritten
			return id, bad("not in canonical form (RFC 5952): use " + a.String())
		}
		return id, nil
	default:
		return id, bad("unsupported identifier type " + quote(id.Type) + " (want dns or ip)")
	}
}

// checkDNSName returns why name is not an LDH host name (optionally with
// one leading "*." label), or "".
func checkDNSName(name string) string {
	base, wildcard := strings.CutPrefix(name, "*.")
	switch {
	case name == "":
		return "empty DNS name"
	case len(name) > 253:
		return "DNS name longer than 253 characters"
	case strings.HasSuffix(name, "."):
		return "DNS name must not end with a dot"
	case strings.Contains(base, "*"):
		return "a wildcard is only allowed as the whole leftmost label"
	case wildcard && !strings.Contains(base, "."):
		return "a wildcard needs at least two labels after it"
	}
	if _, err := netip.ParseAddr(base); err == nil {
		return "IP addresses must use the ip identifier type"
	}
	for _, l := range strings.Split(base, ".") {
		if l == "" || len(l) > 63 {
			return "DNS labels must be 1 to 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "DNS labels must not start or end with a hyphen"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "DNS names may only contain letters, digits and hyphens"
			}
		}
	}
	return ""
}

// csrIdentifiers returns the identifiers a CSR asks for: its DNS names,
// IP addresses and common name (which must be one of them, or a DNS name).
func csrIdentifiers(csr *x509.CertificateRequest) ([]Identifier, error) {
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return nil, prob("badCSR", http.StatusBadRequest, "CSR must not request email or URI names")
	}
	var ids []Identifier
	for _, n := range csr.DNSNames {
		ids = append(ids, Identifier{Type: "dns", Value: strings.ToLower(n)})
	}
	for _, ip := range csr.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		ids = append(ids, Identifier{Type: "ip", Value: a.Unmap().String()})
	}
	if cn := csr.Subject.CommonName; cn != "" {
		id := Identifier{Type: "dns", Value: strings.ToLower(cn)}
		if a, err := netip.ParseAddr(cn); err == nil {
			id = Identifier{Type: "ip", Value: a.Unmap().String()}
		}
		ids = append(ids, id)
	}
	return sortedSet(ids), nil
}

func sortedSet(ids []Identifier) []Identifier {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b Identifier) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return slices.Compact(out)
}
