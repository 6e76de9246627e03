package challenge_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

func txtValue(ka string) string {
	sum := sha256.Sum256([]byte(ka))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestDNS01(t *testing.T) {
	good := txtValue(keyAuth)
	bad := txtValue(token + ".someoneelse")
	tests := []struct {
		name      string
		ident     string
		setup     func(s *challengetest.DNSServer)
		wantType  string
		fragments []string
		hidden    []string // must not appear in the detail
	}{
		{name: "success", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.example.com", good)
		}},
		{name: "wildcard validates the base domain", ident: "*.example.com", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.example.com", good)
		}},
		{name: "case-insensitive name", ident: "WWW.Example.COM", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.www.example.com", good)
		}},
		{name: "one of several values", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.example.com", bad, good, "v=spf1 -all")
		}},
		{name: "wrong value", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.example.com", bad)
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"_acme-challenge.example.com", bad, good}},
		{name: "missing record", ident: "example.com", setup: func(s *challengetest.DNSServer) {},
			wantType: challenge.ErrUnauthorized, fragments: []string{"no TXT record found at _acme-challenge.example.com"}},
		{name: "record on the wrong name", ident: "www.example.com", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.example.com", good)
		}, wantType: challenge.ErrUnauthorized, fragments: []string{"_acme-challenge.www.example.com"}},
		{name: "CNAME chain followed", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetCNAME("_acme-challenge.example.com", "a.validation.example.net")
			s.SetCNAME("a.validation.example.net", "b.validation.example.net")
			s.SetTXT("b.validation.example.net", good)
		}},
		// The client chose the CNAME, but not what the name it points to
		// holds: only digest-shaped values are quoted from there.
		{name: "values reached through a CNAME are not shown", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetCNAME("_acme-challenge.example.com", "vault.internal.example.net")
			s.SetTXT("vault.internal.example.net", "api-key=s3cr3t", bad)
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"a value of 14 bytes", bad}, hidden: []string{"s3cr3t"}},
		{name: "values at the name itself are shown", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetTXT("_acme-challenge.example.com", "v=spf1 -all")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{`"v=spf1 -all"`}},
		{name: "CNAME loop", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetCNAME("_acme-challenge.example.com", "a.example.net")
			s.SetCNAME("a.example.net", "_acme-challenge.example.com")
		}, wantType: challenge.ErrDNS, fragments: []string{"CNAME loop"}},
		{name: "too many CNAMEs", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetCNAME("_acme-challenge.example.com", "c0.example.net")
			for i := range 12 {
				s.SetCNAME(fmt.Sprintf("c%d.example.net", i), fmt.Sprintf("c%d.example.net", i+1))
			}
		}, wantType: challenge.ErrDNS, fragments: []string{"more than 8 CNAMEs"}},
		{name: "SERVFAIL", ident: "example.com", setup: func(s *challengetest.DNSServer) {
			s.SetRcode("_acme-challenge.example.com", dns.RcodeServerFailure)
		}, wantType: challenge.ErrDNS, fragments: []string{"SERVFAIL", "TXT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := challengetest.NewDNSServer(t)
			tt.setup(s)
			v := newValidator(t, challenge.Options{Resolver: s.Addr()})
			err := v.Validate(ctx, challenge.DNS01, challenge.IdentDNS, tt.ident, token, keyAuth)
			want(t, err, tt.wantType, tt.fragments...)
			for _, h := range tt.hidden {
				if err != nil && strings.Contains(err.Error(), h) {
					t.Errorf("detail %q shows %q", err, h)
				}
			}
		})
	}
}

// TestDNS01TCPFallback fills the answer past a 512-byte UDP limit: the
// correct value is only seen if the validator retries over TCP.
func TestDNS01TCPFallback(t *testing.T) {
	s := challengetest.NewDNSServer(t)
	var values []string
	for i := range 30 {
		values = append(values, txtValue(fmt.Sprintf("%s.other%d", token, i)))
	}
	s.SetTXT("_acme-challenge.example.com", append(values, txtValue(keyAuth))...)
	s.TruncateUDPAt(512)
	v := newValidator(t, challenge.Options{Resolver: s.Addr()})
	want(t, v.Validate(ctx, challenge.DNS01, challenge.IdentDNS, "example.com", token, keyAuth), "")
	if s.Queries("udp") != 1 || s.Queries("tcp") != 1 {
		t.Errorf("got %d UDP and %d TCP queries, want one of each", s.Queries("udp"), s.Queries("tcp"))
	}
}

func TestDNS01Timeout(t *testing.T) {
	_, silent := blackhole(t)
	v := newValidator(t, challenge.Options{Resolver: silent, Timeout: 300 * time.Millisecond})
	err := v.Validate(ctx, challenge.DNS01, challenge.IdentDNS, "example.com", token, keyAuth)
	want(t, err, challenge.ErrDNS, "timed out", "_acme-challenge.example.com")
}

func TestDNS01NoServer(t *testing.T) {
	// A closed UDP port: the ICMP port-unreachable ends the query at once.
	v := newValidator(t, challenge.Options{Resolver: fmt.Sprintf("127.0.0.1:%d", closedPort(t)), Timeout: 2 * time.Second})
	err := v.Validate(ctx, challenge.DNS01, challenge.IdentDNS, "example.com", token, keyAuth)
	want(t, err, challenge.ErrDNS, "_acme-challenge.example.com")
}
