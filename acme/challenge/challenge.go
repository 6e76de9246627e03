package challenge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Challenge and identifier types, as they appear in ACME objects.
const (
	HTTP01    = "http-01"
	DNS01     = "dns-01"
	TLSALPN01 = "tls-alpn-01"

	IdentDNS = "dns"
	IdentIP  = "ip"
)

// Error is a failed validation. Type is the suffix of the ACME error type
// (urn:ietf:params:acme:error:<Type>): "connection", "dns",
// "incorrectResponse", "tls", "unauthorized" or "malformed". Detail is safe to
// show to the ACME client.
type Error struct {
	Type   string
	Detail string
}

// Error returns Detail alone, so that a front end may use it as the problem
// detail; the type travels in Type (and ProblemType).
func (e *Error) Error() string { return e.Detail }

// ProblemType returns Type, for front ends that look for this method rather
// than the concrete type.
func (e *Error) ProblemType() string { return e.Type }

// Error types.
const (
	ErrConnection        = "connection"
	ErrDNS               = "dns"
	ErrIncorrectResponse = "incorrectResponse"
	ErrTLS               = "tls"
	ErrUnauthorized      = "unauthorized"
	ErrMalformed         = "malformed"
)

func errorf(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Detail: fmt.Sprintf(format, args...)}
}

// Options configure a Validator. The zero value validates against the
// public internet on the standard ports.
type Options struct {
	// Resolver is the DNS server (host:port) queried for TXT records and,
	// when set, for the A/AAAA records of http-01 and tls-alpn-01
	// identifiers. Zero: dns-01 asks the first nameserver listed in
	// /etc/resolv.conf, and addresses are looked up with the system resolver
	// (which also reads /etc/hosts).
	Resolver string
	// HTTPPort is the port http-01 connects to. Zero: 80.
	HTTPPort int
	// TLSPort is the port tls-alpn-01 connects to, and the port https
	// redirects of http-01 may use besides 443. Zero: 443.
	TLSPort int
	// HostOverride maps an identifier (a lowercase DNS name, or an IP in its
	// canonical form) to the host or IP to connect to instead, for tests and
	// private networks. It is consulted before any DNS lookup, for the
	// identifier and for http-01 redirect targets. An IP address given here
	// is dialled whatever it is; every other address is refused if it is
	// link-local, unspecified, multicast or the IPv4 broadcast address (see
	// neverDialled). Zero: no overrides.
	HostOverride map[string]string
	// RedirectAllowed, when set, is asked about the host of each http-01
	// redirect target (a lowercase DNS name or a canonical IP address)
	// before anything connects to it; an error refuses the redirect with
	// ErrConnection, and its message, which must be safe to show the ACME
	// client, says why. An ACME server passes the identifier policy its
	// orders pass (acme.RedirectPolicy), so that a client cannot point the
	// validator at a host it could not have ordered. Zero: any valid host
	// name or IP address.
	RedirectAllowed func(ctx context.Context, host string) error
	// Timeout bounds one validation attempt: every lookup, connection,
	// redirect and read together. Zero: 10 s.
	Timeout time.Duration
	// MaxRedirects is how many redirects http-01 follows. Zero: 10. Negative:
	// none. Redirects go only to http or https, on ports 80/443 or HTTPPort/
	// TLSPort (RFC 8555 §8.3), and to hosts RedirectAllowed accepts.
	MaxRedirects int
	// MaxBodyBytes is the largest http-01 response body read. Zero: 8 KiB.
	MaxBodyBytes int64
	// Logger receives one debug event per validation. Zero: nothing is logged.
	Logger *slog.Logger
}

// Validator checks challenges. It is safe for concurrent use.
type Validator struct {
	opts Options
	log  *slog.Logger
	// dnsServer is the resolver dns-01 queries (host:port).
	dnsServer string
}

// New checks opts, fills in defaults and returns a Validator.
func New(opts Options) (*Validator, error) {
	if opts.HTTPPort == 0 {
		opts.HTTPPort = 80
	}
	if opts.TLSPort == 0 {
		opts.TLSPort = 443
	}
	for name, p := range map[string]int{"HTTPPort": opts.HTTPPort, "TLSPort": opts.TLSPort} {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("challenge options: %s %d out of range", name, p)
		}
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("challenge options: negative Timeout %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxRedirects == 0 {
		opts.MaxRedirects = 10
	} else if opts.MaxRedirects < 0 {
		opts.MaxRedirects = 0
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("challenge options: negative MaxBodyBytes %d", opts.MaxBodyBytes)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 8 << 10
	}
	overrides := make(map[string]string, len(opts.HostOverride))
	for k, v := range opts.HostOverride {
		overrides[canonicalHost(k)] = v
	}
	opts.HostOverride = overrides
	v := &Validator{opts: opts, log: opts.Logger, dnsServer: opts.Resolver}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.dnsServer == "" {
		server, err := systemResolver("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("challenge options: no Resolver and %w", err)
		}
		v.dnsServer = server
	} else if _, _, err := splitHostPort(v.dnsServer); err != nil {
		return nil, fmt.Errorf("challenge options: Resolver %q: %w", opts.Resolver, err)
	}
	return v, nil
}

// Validate performs one validation attempt of challenge chType for the
// identifier (identType, identValue) with the given token and the key
// authorization the server computed (token "." thumbprint). It returns nil
// when the challenge is satisfied and an *Error otherwise.
//
// identValue is a DNS name (for dns-01 a wildcard "*.example.com" validates
// the base domain) or an IP address (http-01 and tls-alpn-01 only, RFC 8738).
func (v *Validator) Validate(ctx context.Context, chType, identType, identValue, token, keyAuthorization string) error {
	start := time.Now()
	err := v.validate(ctx, chType, identType, identValue, token, keyAuthorization)
	attrs := []any{"type", chType, "identifier_type", identType, "identifier", identValue,
		"duration", time.Since(start)}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	v.log.DebugContext(ctx, "challenge validation", attrs...)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			// Every path returns *Error; anything else is a bug, reported safely.
			return errorf(ErrConnection, "validation failed")
		}
		return ce
	}
	return nil
}

func (v *Validator) validate(ctx context.Context, chType, identType, identValue, token, keyAuth string) *Error {
	if err := checkToken(token, keyAuth); err != nil {
		return err
	}
	id, err := parseIdentifier(identType, identValue, chType == DNS01)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	switch chType {
	case HTTP01:
		if id.wildcard {
			return errorf(ErrMalformed, "http-01 cannot validate the wildcard identifier %q", identValue)
		}
		return v.validateHTTP01(ctx, id, token, keyAuth)
	case DNS01:
		if id.isIP() {
			return errorf(ErrMalformed, "dns-01 cannot validate the ip identifier %s (RFC 8738 §7)", id.value)
		}
		return v.validateDNS01(ctx, id, keyAuth)
	case TLSALPN01:
		if id.wildcard {
			return errorf(ErrMalformed, "tls-alpn-01 cannot validate the wildcard identifier %q", identValue)
		}
		return v.validateTLSALPN01(ctx, id, keyAuth)
	default:
		return errorf(ErrMalformed, "unsupported challenge type %q", truncate(chType, 32))
	}
}

// identifier is a checked identifier: value is a lowercase DNS name without
// the wildcard label, or a canonical IP address.
type identifier struct {
	value    string
	ip       netip.Addr
	wildcard bool
}

func (id identifier) isIP() bool { return id.ip.IsValid() }

func parseIdentifier(identType, value string, allowWildcard bool) (identifier, *Error) {
	switch identType {
	case IdentIP:
		ip, err := netip.ParseAddr(value)
		if err != nil || ip.Zone() != "" {
			return identifier{}, errorf(ErrMalformed, "%q is not an IP address", truncate(value, 64))
		}
		ip = ip.Unmap()
		return identifier{value: ip.String(), ip: ip}, nil
	case IdentDNS:
		name := strings.ToLower(value)
		wildcard := strings.HasPrefix(name, "*.")
		if wildcard {
			if !allowWildcard {
				return identifier{}, errorf(ErrMalformed, "only dns-01 can validate the wildcard identifier %q", truncate(value, 64))
			}
			name = name[2:]
		}
		if !validDNSName(name) {
			return identifier{}, errorf(ErrMalformed, "%q is not a valid DNS name", truncate(value, 64))
		}
		return identifier{value: name, wildcard: wildcard}, nil
	default:
		return identifier{}, errorf(ErrMalformed, "unsupported identifier type %q", truncate(identType, 32))
	}
}

// validDNSName accepts an LDH hostname of at least two labels, without a
// trailing dot, that is not an IP address.
func validDNSName(name string) bool {
	if len(name) == 0 || len(name) > 253 || strings.HasSuffix(name, ".") {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkToken enforces RFC 8555 §8.1/§8.3: the token is base64url (so it is
// safe in a URL path) and the key authorization is token "." thumbprint.
func checkToken(token, keyAuth string) *Error {
	if len(token) < 16 || len(token) > 256 || !isBase64URL(token) {
		return errorf(ErrMalformed, "challenge token is not a base64url string of 16 to 256 characters")
	}
	thumb, ok := strings.CutPrefix(keyAuth, token+".")
	if !ok || len(thumb) == 0 || len(thumb) > 256 || !isBase64URL(thumb) {
		return errorf(ErrMalformed, "key authorization is not token.thumbprint")
	}
	return nil
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// truncate shortens s to at most n bytes (on a rune boundary) for error
// details, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// quoted renders untrusted bytes for an error detail: truncated and quoted so
// control characters cannot forge log lines or problem text.
func quoted(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q (truncated, %d bytes)", truncate(string(b), n), len(b))
	}
	return fmt.Sprintf("%q", b)
}
