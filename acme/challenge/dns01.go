package challenge

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEs bounds the CNAME chain followed from _acme-challenge.<domain>.
const maxCNAMEs = 8

// validateDNS01 implements RFC 8555 §8.4: a TXT record at
// _acme-challenge.<domain> (the base domain for a wildcard) holds
// base64url(SHA-256(keyAuthorization)).
func (v *Validator) validateDNS01(ctx context.Context, id identifier, keyAuth string) *Error {
	sum := sha256.Sum256([]byte(keyAuth))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	name := "_acme-challenge." + id.value
	rrs, err := v.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return err
	}
	var found []string
	viaCNAME := false
	for _, rr := range rrs {
		if txt, ok := rr.(*dns.TXT); ok {
			// A TXT record may be split into several strings of at most 255
			// bytes; the value is their concatenation.
			found = append(found, strings.Join(txt.Txt, ""))
			viaCNAME = viaCNAME || !strings.EqualFold(txt.Hdr.Name, dns.Fqdn(name))
		}
	}
	if len(found) == 0 {
		return errorf(ErrUnauthorized, "no TXT record found at %s", name)
	}
	if slices.Contains(found, want) {
		return nil
	}
	shown := make([]string, 0, 3)
	for _, f := range found[:min(len(found), 3)] {
		// Records at the client's own name are quoted. A CNAME may lead to
		// a name the client does not control (an internal zone only the
		// validator's resolver answers for): there only values shaped like
		// the expected digest are, since they reveal nothing else.
		if viaCNAME && (len(f) > 64 || !isBase64URL(f)) {
			shown = append(shown, fmt.Sprintf("a value of %d bytes", len(f)))
			continue
		}
		shown = append(shown, quoted([]byte(f), 64))
	}
	more := ""
	if len(found) > 3 {
		more = fmt.Sprintf(" and %d more", len(found)-3)
	}
	return errorf(ErrIncorrectResponse, "TXT records at %s (%s%s) do not include the expected value %q",
		name, strings.Join(shown, ", "), more, want)
}

// query asks the resolver for name/qtype and returns the records of that type
// at the end of the CNAME chain. A name that does not exist, or has no records
// of the type, yields no records and no error; transport failures and error
// responses yield an ErrDNS *Error.
func (v *Validator) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, *Error) {
	qt := dns.TypeToString[qtype]
	target := dns.Fqdn(strings.ToLower(name))
	seen := map[string]bool{target: true}
	for range maxCNAMEs + 1 {
		resp, err := v.exchange(ctx, target, qtype)
		if err != nil {
			return nil, err
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
		default:
			return nil, errorf(ErrDNS, "DNS server answered %s looking up %s for %s",
				dns.RcodeToString[resp.Rcode], qt, strings.TrimSuffix(target, "."))
		}
		// Walk the chain inside this answer (a recursive resolver returns it
		// whole); query again only where the answer stops at a CNAME.
		for {
			records, cname := recordsAt(resp, target, qtype)
			if len(records) > 0 || cname == "" {
				return records, nil
			}
			if seen[cname] {
				return nil, errorf(ErrDNS, "CNAME loop at %s looking up %s for %s", strings.TrimSuffix(cname, "."), qt, name)
			}
			if len(seen) > maxCNAMEs {
				return nil, errorf(ErrDNS, "more than %d CNAMEs looking up %s for %s", maxCNAMEs, qt, name)
			}
			seen[cname] = true
			target = cname
			if !answersFor(resp, target) {
				break
			}
		}
	}
	return nil, errorf(ErrDNS, "more than %d CNAMEs looking up %s for %s", maxCNAMEs, qt, name)
}

// recordsAt returns the records of type qtype owned by fqdn in the answer,
// or else the CNAME target of fqdn, if any.
func recordsAt(resp *dns.Msg, fqdn string, qtype uint16) (records []dns.RR, cname string) {
	for _, rr := range resp.Answer {
		h := rr.Header()
		if !strings.EqualFold(h.Name, fqdn) {
			continue
		}
		if h.Rrtype == qtype {
			records = append(records, rr)
		} else if c, ok := rr.(*dns.CNAME); ok {
			cname = dns.Fqdn(strings.ToLower(c.Target))
		}
	}
	return records, cname
}

func answersFor(resp *dns.Msg, fqdn string) bool {
	for _, rr := range resp.Answer {
		if strings.EqualFold(rr.Header().Name, fqdn) {
			return true
		}
	}
	return false
}

// exchange sends one query over UDP and repeats it over TCP when the answer
// is truncated.
func (v *Validator) exchange(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, *Error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", UDPSize: 4096}
	resp, _, err := c.ExchangeContext(ctx, m, v.dnsServer)
	if err == nil && resp.Truncated {
		c = &dns.Client{Net: "tcp"}
		resp, _, err = c.ExchangeContext(ctx, m, v.dnsServer)
	}
	if err != nil {
		what := fmt.Sprintf("looking up %s for %s", dns.TypeToString[qtype], strings.TrimSuffix(fqdn, "."))
		if ctx.Err() != nil || isTimeout(err) {
			return nil, errorf(ErrDNS, "%s: timed out", what)
		}
		return nil, errorf(ErrDNS, "%s: no answer from the DNS server", what)
	}
	if resp.Id != m.Id {
		return nil, errorf(ErrDNS, "looking up %s for %s: mismatched response", dns.TypeToString[qtype], fqdn)
	}
	return resp, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
