package challengetest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSServer answers A, AAAA, CNAME, TXT and SOA queries over UDP and TCP on
// the same loopback port from records held in memory, and accepts RFC 2136
// updates of TXT records. It is authoritative for every name: the zone apex
// of a name is its last two labels.
type DNSServer struct {
	mu      sync.Mutex
	txt     map[string][]string
	addrs   map[string][]net.IP
	cname   map[string]string
	rcode   map[string]int
	udpSize int
	queries map[string]int // by transport, "udp" or "tcp"

	udp, tcp *dns.Server
	api      *apiServer
	addr     string
}

// NewDNSServer starts a DNSServer on 127.0.0.1 and stops it when the test
// ends.
func NewDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	s, err := StartDNSServer("127.0.0.1")
	if err != nil {
		t.Fatalf("starting test DNS server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartDNSServer starts a DNSServer on a free port of host (UDP and TCP on
// the same port) and its HTTP API on another. Close stops both.
func StartDNSServer(host string) (*DNSServer, error) {
	s := &DNSServer{
		txt:     map[string][]string{},
		addrs:   map[string][]net.IP{},
		cname:   map[string]string{},
		rcode:   map[string]int{},
		queries: map[string]int{},
	}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	// The kernel picks a free UDP port; the same TCP port is usually free
	// too, but another process may hold it, so try a few times.
	for range 20 {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("listening on UDP: %w", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("listening on TCP: %w", err)
	}
	s.addr = pc.LocalAddr().String()
	handler := dns.HandlerFunc(s.serveDNS)
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, MsgAcceptFunc: acceptWithUpdates}
	s.tcp = &dns.Server{Listener: ln, Handler: handler, MsgAcceptFunc: acceptWithUpdates}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			s.Close()
			return nil, errors.New("DNS server did not start")
		}
	}
	s.api, err = startAPI(host, s)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// acceptWithUpdates is miekg's default filter, which refuses UPDATE, plus
// UPDATE.
func acceptWithUpdates(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr == 0 && int(dh.Bits>>11)&0xF == dns.OpcodeUpdate {
		return dns.MsgAccept
	}
	return dns.DefaultMsgAcceptFunc(dh)
}

// Close stops the server.
func (s *DNSServer) Close() {
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			_ = srv.Shutdown()
		}
	}
	if s.api != nil {
		s.api.Close()
	}
}

// Addr is the host:port of the DNS server (UDP and TCP).
func (s *DNSServer) Addr() string { return s.addr }

// APIURL is the base URL of the HTTP API (see the package doc).
func (s *DNSServer) APIURL() string { return s.api.url }

func key(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// SetTXT replaces the TXT records at name with values (none: removes them).
func (s *DNSServer) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(values) == 0 {
		delete(s.txt, key(name))
		return
	}
	s.txt[key(name)] = slices.Clone(values)
}

// AddTXT adds value to the TXT records at name, if it is not there yet.
func (s *DNSServer) AddTXT(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.txt[key(name)], value) {
		s.txt[key(name)] = append(s.txt[key(name)], value)
	}
}

// RemoveTXT removes one value from the TXT records at name.
func (s *DNSServer) RemoveTXT(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := slices.DeleteFunc(slices.Clone(s.txt[key(name)]), func(v string) bool { return v == value })
	if len(vals) == 0 {
		delete(s.txt, key(name))
	} else {
		s.txt[key(name)] = vals
	}
}

// ClearTXT removes every TXT record at name.
func (s *DNSServer) ClearTXT(name string) { s.SetTXT(name) }

// TXT returns the TXT values at name.
func (s *DNSServer) TXT(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.txt[key(name)])
}

// SetA replaces the address records of name: IPv4 addresses become A
// records, IPv6 addresses AAAA records. No ips removes them. It panics on a
// string that is not an IP address (a test bug).
func (s *DNSServer) SetA(name string, ips ...string) {
	parsed := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		p := net.ParseIP(ip)
		if p == nil {
			panic(fmt.Sprintf("challengetest: SetA(%q): %q is not an IP address", name, ip))
		}
		parsed = append(parsed, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(parsed) == 0 {
		delete(s.addrs, key(name))
		return
	}
	s.addrs[key(name)] = parsed
}

// SetCNAME makes name an alias of target ("" removes it). The server does
// not chase the alias itself: the answer holds the CNAME only, so the
// client must ask again for the target.
func (s *DNSServer) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if target == "" {
		delete(s.cname, key(name))
		return
	}
	s.cname[key(name)] = key(target)
}

// SetRcode makes every query for name fail with rcode (for example
// dns.RcodeServerFailure); dns.RcodeSuccess restores normal answers.
func (s *DNSServer) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, key(name))
		return
	}
	s.rcode[key(name)] = rcode
}

// TruncateUDPAt makes UDP answers larger than n bytes truncated (TC bit set),
// whatever EDNS0 buffer size the client offers, so tests can check that
// clients retry over TCP. Zero restores the default (the client's EDNS0
// size, or 512).
func (s *DNSServer) TruncateUDPAt(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udpSize = n
}

// Queries returns how many queries arrived over transport "udp" or "tcp".
func (s *DNSServer) Queries(transport string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[transport]
}
