package challenge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// systemResolver returns the first nameserver of a resolv.conf file.
func systemResolver(path string) (string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(cfg.Servers) == 0 {
		return "", fmt.Errorf("%s lists no nameserver", path)
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// canonicalHost is the key HostOverride uses: lowercase names without a
// trailing dot, canonical IP text.
func canonicalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// lookupHost returns the addresses to try for host, in order: the override,
// the IP itself, or A and AAAA records (IPv4 first, since validation targets
// on private networks are far more often reachable over IPv4). Addresses
// neverDialled refuses are left out, unless an override names the address.
func (v *Validator) lookupHost(ctx context.Context, host string) ([]netip.Addr, *Error) {
	host = canonicalHost(host)
	if o, ok := v.opts.HostOverride[host]; ok {
		host = canonicalHost(o)
		if ip, err := netip.ParseAddr(host); err == nil {
			// The operator chose this address: it is dialled, whatever it is.
			return []netip.Addr{ip.Unmap()}, nil
		}
	}
	addrs, derr := v.resolve(ctx, host)
	if derr != nil {
		return nil, derr
	}
	var refused string // why the first refused address is
	dialable := addrs[:0]
	for _, ip := range addrs {
		if why := neverDialled(ip); why != "" {
			if refused == "" {
				refused = fmt.Sprintf("%s is %s: never dialled for validation", ip, why)
			}
			continue
		}
		dialable = append(dialable, ip)
	}
	switch {
	case len(dialable) > 0:
		return dialable, nil
	case len(addrs) == 1 && addrs[0].String() == host:
		return nil, errorf(ErrConnection, "%s", refused)
	default:
		return nil, errorf(ErrConnection, "%s has no address validation may connect to: %s", host, refused)
	}
}

// metadataAddrs are cloud metadata services outside the link-local
// ranges: AWS's IPv6 one and Alibaba Cloud's. They answer a validator's
// request with the instance's own data.
var metadataAddrs = map[netip.Addr]bool{
	netip.MustParseAddr("fd00:ec2::254"):   true,
	netip.MustParseAddr("100.100.100.200"): true,
}

// neverDialled says why no validation may connect to ip, or returns "".
// Link-local addresses reach cloud metadata services (169.254.169.254,
// fe80::…) and the hosts on the validator's own link; the unspecified,
// multicast and broadcast addresses name no single server. Loopback and
// private ranges stay allowed: validating internal names is what a private
// CA is for.
func neverDialled(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case metadataAddrs[ip]:
		return "a cloud metadata service's address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the IPv4 broadcast address"
	}
	return ""
}

// resolve returns the addresses of host (a canonical name or IP address):
// the IP itself, the loopback addresses for localhost names, or A and AAAA
// records.
func (v *Validator) resolve(ctx context.Context, host string) ([]netip.Addr, *Error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// RFC 6761 §6.3: localhost names are the loopback address and are
		// never sent to a DNS server. This is what lets a developer point
		// certbot or lego at a local CA for app.localhost.
		return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}, nil
	}
	var addrs []netip.Addr
	if v.opts.Resolver == "" {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				return nil, errorf(ErrDNS, "no A or AAAA record found for %s", host)
			}
			if ctx.Err() != nil {
				return nil, errorf(ErrDNS, "looking up A/AAAA for %s: timed out", host)
			}
			return nil, errorf(ErrDNS, "looking up A/AAAA for %s failed", host)
		}
		for _, ip := range ips {
			addrs = append(addrs, ip.Unmap())
		}
	} else {
		var lastErr *Error
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			rrs, err := v.query(ctx, host, qtype)
			if err != nil {
				lastErr = err
				continue
			}
			for _, rr := range rrs {
				switch r := rr.(type) {
				case *dns.A:
					if ip, ok := netip.AddrFromSlice(r.A.To4()); ok {
						addrs = append(addrs, ip)
					}
				case *dns.AAAA:
					if ip, ok := netip.AddrFromSlice(r.AAAA); ok {
						addrs = append(addrs, ip.Unmap())
					}
				}
			}
		}
		if len(addrs) == 0 && lastErr != nil {
			return nil, lastErr
		}
	}
	if len(addrs) == 0 {
		return nil, errorf(ErrDNS, "no A or AAAA record found for %s", host)
	}
	return addrs, nil
}

// dial connects to host:port, trying each address of host in turn. The
// error detail names the identifier and port, never the internal cause.
func (v *Validator) dial(ctx context.Context, host string, port int) (net.Conn, *Error) {
	addrs, derr := v.lookupHost(ctx, host)
	if derr != nil {
		return nil, derr
	}
	var d net.Dialer
	var last error
	for _, ip := range addrs {
		conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, connError(ctx, fmt.Sprintf("connecting to %s port %d", host, port), last)
}

// connError turns a network error into a client-safe *Error.
func connError(ctx context.Context, what string, err error) *Error {
	var ne net.Error
	switch {
	case ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()):
		return errorf(ErrConnection, "%s: timed out", what)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		// Operating-system errors ("connection refused", "connection reset by
		// peer") say nothing private and help the client most.
		return errorf(ErrConnection, "%s: %s", what, errno.Error())
	}
	return errorf(ErrConnection, "%s failed", what)
}
