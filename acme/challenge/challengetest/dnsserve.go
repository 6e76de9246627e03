package challengetest

import (
	"strings"

	"github.com/miekg/dns"
)

const ttl = 1

func (s *DNSServer) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	transport := "udp"
	if w.RemoteAddr().Network() == "tcp" {
		transport = "tcp"
	}
	resp := new(dns.Msg)
	if req.Opcode == dns.OpcodeUpdate {
		resp.SetRcode(req, s.update(req))
		_ = w.WriteMsg(resp)
		return
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true

	s.mu.Lock()
	s.queries[transport]++
	udpSize := s.udpSize
	if len(req.Question) == 1 {
		s.answer(resp, req.Question[0])
	} else {
		resp.Rcode = dns.RcodeFormatError
	}
	s.mu.Unlock()

	if transport == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		if udpSize > 0 {
			size = udpSize
		}
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// answer fills resp for q; s.mu is held.
func (s *DNSServer) answer(resp *dns.Msg, q dns.Question) {
	name := key(q.Name)
	if rc, ok := s.rcode[name]; ok {
		resp.Rcode = rc
		return
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	if target, ok := s.cname[name]; ok && q.Qtype != dns.TypeCNAME {
		resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: target})
		return
	}
	switch q.Qtype {
	case dns.TypeTXT:
		for _, v := range s.txt[name] {
			resp.Answer = append(resp.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: splitTXT(v)})
		}
	case dns.TypeA, dns.TypeAAAA:
		for _, ip := range s.addrs[name] {
			if v4 := ip.To4(); v4 != nil && q.Qtype == dns.TypeA {
				resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: v4})
			} else if v4 == nil && q.Qtype == dns.TypeAAAA {
				resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip})
			}
		}
	case dns.TypeCNAME:
		if target, ok := s.cname[name]; ok {
			resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: target})
		}
	case dns.TypeSOA:
		if apex(name) == name {
			resp.Answer = append(resp.Answer, s.soa(name))
		}
	case dns.TypeNS:
		if apex(name) == name {
			resp.Answer = append(resp.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: "ns." + name})
		}
	}
	if len(resp.Answer) > 0 {
		return
	}
	resp.Ns = append(resp.Ns, s.soa(apex(name)))
	if !s.exists(name) {
		resp.Rcode = dns.RcodeNameError
	}
}

// exists reports whether name owns a record, is a zone apex, or is an empty
// non-terminal above a name that does (RFC 8020: such a name is NOERROR).
func (s *DNSServer) exists(name string) bool {
	if apex(name) == name {
		return true
	}
	suffix := "." + name
	for _, m := range []map[string]bool{keys(s.txt), keys(s.addrs), keys(s.cname)} {
		for k := range m {
			if k == name || strings.HasSuffix(k, suffix) {
				return true
			}
		}
	}
	return false
}

func keys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// apex returns the zone a name is in: its last two labels.
func apex(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) <= 2 {
		return dns.Fqdn(strings.Join(labels, "."))
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}

func (s *DNSServer) soa(zone string) dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "ns." + zone, Mbox: "hostmaster." + zone,
		Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: ttl,
	}
}

// splitTXT cuts a value into the 255-byte strings a TXT record holds.
func splitTXT(v string) []string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, v[:255])
		v = v[255:]
	}
	return append(parts, v)
}

// update applies an RFC 2136 update of TXT records (§2.5: add, delete an
// RRset, delete one RR). Prerequisites are ignored and TSIG is not checked.
func (s *DNSServer) update(req *dns.Msg) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range req.Ns {
		h := rr.Header()
		name := key(h.Name)
		if h.Rrtype != dns.TypeTXT && h.Rrtype != dns.TypeANY {
			return dns.RcodeNotImplemented
		}
		txt, _ := rr.(*dns.TXT)
		switch h.Class {
		case dns.ClassINET:
			if txt == nil {
				return dns.RcodeFormatError
			}
			v := strings.Join(txt.Txt, "")
			if !contains(s.txt[name], v) {
				s.txt[name] = append(s.txt[name], v)
			}
		case dns.ClassANY:
			delete(s.txt, name)
		case dns.ClassNONE:
			if txt == nil {
				return dns.RcodeFormatError
			}
			v := strings.Join(txt.Txt, "")
			var kept []string
			for _, old := range s.txt[name] {
				if old != v {
					kept = append(kept, old)
				}
			}
			if len(kept) == 0 {
				delete(s.txt, name)
			} else {
				s.txt[name] = kept
			}
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

func contains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}
