package ra

import (
	"fmt"
	"net/url"
	"strings"
)

// URI and email SANs under a policy or a credential's limits: a SPIFFE
// workload identity (spiffe://corp.internal/ns/team-a/sa/web) is allowed by
// a URI prefix, an email address by its domain. Vault PKI roles
// (allowed_uri_sans) and step-ca policies (uris, emails) limit them the same
// way.

// ParseURIPrefix checks an allowed URI prefix and returns it normalized: an
// absolute URI with a host, its scheme and host in lower case, its path
// without a trailing slash; no user, query, fragment, dot segments or
// percent-encoded slashes.
func ParseURIPrefix(s string) (string, error) {
	u, ok := identityURI(strings.TrimSpace(s))
	if !ok || u.Host == "" {
		return "", fmt.Errorf("%q is not a URI prefix (an absolute URI with a host, such as spiffe://corp.internal/ns/team-a; no user, query, fragment or dot segments)", s)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// identityURI parses s as a URI that can be compared by prefix: printable
// ASCII (a URI SAN is an IA5String, RFC 5280 §4.2.1.6: Unicode case
// folding must not make "\u212a8s" read as "k8s"), absolute, not opaque,
// no user, query or fragment, no "." or ".." path segment and no encoded
// slash (a relying party that decodes the path must see the same
// segments). Scheme and host come back in lower case.
func identityURI(s string) (*url.URL, bool) {
	if !printableASCII(s) {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || strings.Contains(s, "#") {
		return nil, false
	}
	if strings.Contains(strings.ToLower(u.EscapedPath()), "%2f") {
		return nil, false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, false
		}
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u, true
}

// uriUnder reports whether the URI SAN s sits under one of prefixes (as
// ParseURIPrefix returns them): same scheme and host, and a path equal to
// the prefix's or below it by whole segments, so spiffe://c/ns/a allows
// spiffe://c/ns/a/sa/web but not spiffe://c/ns/ab.
func uriUnder(s string, prefixes []string) bool {
	u, ok := identityURI(s)
	if !ok {
		return false
	}
	path := u.EscapedPath()
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(p, u.Scheme+"://"+u.Host)
		if ok && (rest == "" || strings.HasPrefix(rest, "/")) && (path == rest || strings.HasPrefix(path, rest+"/")) {
			return true
		}
	}
	return false
}

// ParseEmailDomain checks an allowed email domain ("corp.internal" or
// "@corp.internal") and returns it in lower case without the "@".
func ParseEmailDomain(s string) (string, error) {
	d, err := ParseDNSSuffix(strings.TrimPrefix(strings.TrimSpace(s), "@"))
	if err != nil {
		return "", fmt.Errorf("%q is not an email domain (such as @corp.internal)", s)
	}
	return d, nil
}

// emailUnder reports whether the email SAN s (local@domain) has a domain
// equal to or under one of domains.
func emailUnder(s string, domains []string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return false
	}
	domain = strings.ToLower(domain)
	if badLabels(strings.Split(domain, ".")) != "" {
		return false
	}
	for _, d := range domains {
		if hasSuffix(domain, d) {
			return true
		}
	}
	return false
}

// maxURILength bounds a URI SAN (the SPIFFE ID limit, RFC-free otherwise).
const maxURILength = 2048

// printableASCII reports whether s is all printable ASCII, no space.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// uriSyntax says why s cannot be a URI SAN at all, whatever the policy
// allows, or "": printable ASCII, at most maxURILength bytes, an absolute
// URI; a spiffe: URI must be a SPIFFE ID (spiffeSyntax).
func uriSyntax(s string) string {
	if len(s) > maxURILength {
		return fmt.Sprintf("is longer than %d bytes", maxURILength)
	}
	if !printableASCII(s) {
		return "is not a URI: only printable ASCII (an IRI's Unicode must be percent-encoded)"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "is not an absolute URI"
	}
	if strings.EqualFold(u.Scheme, "spiffe") {
		return spiffeSyntax(s)
	}
	return ""
}

// spiffeSyntax checks a SPIFFE ID as the SPIFFE ID standard writes it:
// spiffe:// in lower case, a trust domain of lower-case letters, digits,
// dots, dashes and underscores, then path segments of letters, digits,
// dots, dashes and underscores, none empty, "." or "..", no trailing
// slash, no percent-encoding, port, user, query or fragment.
func spiffeSyntax(s string) string {
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return "is not a SPIFFE ID: it must begin with spiffe:// in lower case"
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || strings.Trim(td, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" {
		return "is not a SPIFFE ID: its trust domain may hold only lower-case letters, digits, dots, dashes and underscores"
	}
	if path == "" && strings.HasSuffix(rest, "/") {
		return "is not a SPIFFE ID: no trailing slash"
	}
	if path == "" {
		return ""
	}
	for _, seg := range strings.Split(path, "/") {
		switch {
		case seg == "":
			return "is not a SPIFFE ID: empty path segment or trailing slash"
		case seg == "." || seg == "..":
			return "is not a SPIFFE ID: . and .. path segments are not allowed"
		case strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "":
			return "is not a SPIFFE ID: path segments may hold only letters, digits, dots, dashes and underscores"
		}
	}
	return ""
}

// emailSyntax says why s cannot be an email SAN at all, or "": an
// rfc822Name is an IA5String mailbox, local@domain (RFC 5280 §4.2.1.6):
// printable ASCII, one "@", a local part of 1 to 64 bytes, a DNS domain;
// at most 254 bytes (RFC 5321 §4.5.3.1).
func emailSyntax(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !printableASCII(s):
		return "is not an email address: only printable ASCII (an internationalised address needs SmtpUTF8Mailbox, which is not issued)"
	case len(s) > 254 || !ok || local == "" || len(local) > 64 || strings.Contains(domain, "@"):
		return "is not an email address (local@domain, a local part of 1 to 64 bytes, at most 254 in all)"
	case !strings.Contains(domain, ".") || badLabels(strings.Split(strings.ToLower(domain), ".")) != "":
		return "is not an email address: its domain is not a DNS name"
	}
	return ""
}

// checkURI checks a URI SAN against the policy and returns a client-safe
// reason, or "".
func (p *Policy) checkURI(s string) string {
	if why := uriSyntax(s); why != "" {
		return why
	}
	switch {
	case len(p.AllowedURIPrefixes) > 0:
		if !uriUnder(s, p.AllowedURIPrefixes) {
			return "is outside the allowed URI prefixes"
		}
	case !p.AllowURISANs:
		return "is a URI, and policy allows none"
	}
	return ""
}

// checkEmail checks an email SAN against the policy and returns a
// client-safe reason, or "".
func (p *Policy) checkEmail(s string) string {
	if why := emailSyntax(s); why != "" {
		return why
	}
	switch {
	case len(p.AllowedEmailDomains) > 0:
		if !emailUnder(s, p.AllowedEmailDomains) {
			return "is outside the allowed email domains"
		}
	case !p.AllowEmailSANs:
		return "is an email address, and policy allows none"
	}
	return ""
}
