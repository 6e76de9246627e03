package challenge_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/miekg/dns"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// Each validator benchmark has a reference beside it: the bare network
// operation it is built on (one HTTP GET on a fresh connection, one DNS
// exchange), against the same loopback server in the same run.

func BenchmarkHTTP01(b *testing.B) {
	srv := challengetest.NewHTTP01Server(b)
	srv.SetToken(token, keyAuth)
	v, err := challenge.New(challenge.Options{HTTPPort: srv.Port()})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if err := v.Validate(ctx, challenge.HTTP01, challenge.IdentIP, "127.0.0.1", token, keyAuth); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference-raw-GET", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		url := fmt.Sprintf("http://%s%s", srv.Addr(), challengePath)
		for b.Loop() {
			resp, err := client.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func BenchmarkDNS01(b *testing.B) {
	srv := challengetest.NewDNSServer(b)
	srv.SetTXT("_acme-challenge.example.com", txtValue(keyAuth))
	v, err := challenge.New(challenge.Options{Resolver: srv.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if err := v.Validate(ctx, challenge.DNS01, challenge.IdentDNS, "example.com", token, keyAuth); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference-raw-exchange", func(b *testing.B) {
		m := new(dns.Msg)
		m.SetQuestion("_acme-challenge.example.com.", dns.TypeTXT)
		for b.Loop() {
			if _, err := dns.Exchange(m, srv.Addr()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTLSALPN01(b *testing.B) {
	srv := challengetest.NewTLSALPNServer(b)
	if err := srv.Set("127.0.0.1", keyAuth); err != nil {
		b.Fatal(err)
	}
	v, err := challenge.New(challenge.Options{TLSPort: srv.Port()})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := v.Validate(ctx, challenge.TLSALPN01, challenge.IdentIP, "127.0.0.1", token, keyAuth); err != nil {
			b.Fatal(err)
		}
	}
}
