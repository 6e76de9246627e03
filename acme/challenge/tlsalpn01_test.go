package challenge_test

import (
	"crypto/sha256"
	"encoding/asn1"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

func TestTLSALPN01(t *testing.T) {
	wrongDigest := sha256.Sum256([]byte(token + ".someoneelse"))
	wrongDigestDER, _ := asn1.Marshal(wrongDigest[:])
	tests := []struct {
		name      string
		ident     string
		identType string
		certFor   string // SNI the certificate is served for; "" = challengetest.SNI(ident)
		opts      challengetest.ALPNCertOptions
		protos    []string // server ALPN protocols; nil = acme-tls/1
		wantType  string
		fragments []string
	}{
		{name: "success", ident: "example.com"},
		{name: "IP identifier, reverse-DNS SNI", ident: "127.0.0.1", identType: challenge.IdentIP},
		{name: "IPv6 identifier, reverse-DNS SNI", ident: "::1", identType: challenge.IdentIP},
		{name: "certificate missing the extension", ident: "example.com",
			opts:     challengetest.ALPNCertOptions{OmitExtension: true},
			wantType: challenge.ErrUnauthorized, fragments: []string{"no acmeIdentifier extension"}},
		{name: "extension not critical", ident: "example.com",
			opts:     challengetest.ALPNCertOptions{NonCritical: true},
			wantType: challenge.ErrUnauthorized, fragments: []string{"not critical"}},
		{name: "wrong digest", ident: "example.com",
			opts:     challengetest.ALPNCertOptions{Value: wrongDigestDER},
			wantType: challenge.ErrIncorrectResponse, fragments: []string{"acmeIdentifier is"}},
		{name: "extension not an OCTET STRING", ident: "example.com",
			opts:     challengetest.ALPNCertOptions{Value: []byte{0x05, 0x00}},
			wantType: challenge.ErrUnauthorized, fragments: []string{"not a 32-byte OCTET STRING"}},
		{name: "wrong SAN", ident: "example.com",
			opts:     challengetest.ALPNCertOptions{Names: []string{"other.example.com"}},
			wantType: challenge.ErrUnauthorized, fragments: []string{"DNS:other.example.com", "want the DNS name example.com"}},
		{name: "extra SAN", ident: "example.com",
			opts:     challengetest.ALPNCertOptions{Names: []string{"example.com", "www.example.com"}},
			wantType: challenge.ErrUnauthorized, fragments: []string{"2 subjectAltNames"}},
		{name: "IP identifier with a DNS SAN", ident: "127.0.0.1", identType: challenge.IdentIP,
			opts:     challengetest.ALPNCertOptions{Names: []string{"localhost"}},
			wantType: challenge.ErrUnauthorized, fragments: []string{"want the IP address 127.0.0.1"}},
		{name: "server ignores ALPN", ident: "example.com", protos: []string{},
			wantType: challenge.ErrTLS, fragments: []string{"did not negotiate ALPN protocol acme-tls/1"}},
		{name: "server speaks only h2", ident: "example.com", protos: []string{"h2"},
			wantType: challenge.ErrTLS, fragments: []string{"handshake", "SNI example.com"}},
		{name: "no certificate for the SNI", ident: "example.com", certFor: "other.example.com",
			wantType: challenge.ErrTLS, fragments: []string{"handshake"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := challengetest.NewTLSALPNServer(t)
			cert, err := challengetest.ALPNCert(tt.ident, keyAuth, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			sni := tt.certFor
			if sni == "" {
				sni = challengetest.SNI(tt.ident)
			}
			srv.SetCertificate(sni, cert)
			if tt.protos != nil {
				srv.SetNextProtos(tt.protos...)
			}
			identType := tt.identType
			if identType == "" {
				identType = challenge.IdentDNS
			}
			// The responder listens on 127.0.0.1; the override sends the
			// IPv6 identifier there too (its SNI and SAN are still ::1's).
			v := newValidator(t, challenge.Options{TLSPort: srv.Port(),
				HostOverride: map[string]string{"example.com": "127.0.0.1", "::1": "127.0.0.1"}})
			err = v.Validate(ctx, challenge.TLSALPN01, identType, tt.ident, token, keyAuth)
			want(t, err, tt.wantType, tt.fragments...)
		})
	}
}

func TestTLSALPN01Timeout(t *testing.T) {
	hole, _ := blackhole(t)
	v := newValidator(t, challenge.Options{TLSPort: hole, Timeout: 300 * time.Millisecond})
	err := v.Validate(ctx, challenge.TLSALPN01, challenge.IdentIP, "127.0.0.1", token, keyAuth)
	want(t, err, challenge.ErrConnection, "timed out", "127.0.0.1 port")
}

func TestTLSALPN01NotTLS(t *testing.T) {
	resp := challengetest.NewHTTP01Server(t) // plain HTTP on the TLS port
	v := newValidator(t, challenge.Options{TLSPort: resp.Port()})
	err := v.Validate(ctx, challenge.TLSALPN01, challenge.IdentIP, "127.0.0.1", token, keyAuth)
	want(t, err, challenge.ErrTLS, "handshake")
}
