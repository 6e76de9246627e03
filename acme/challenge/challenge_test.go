package challenge_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge"
)

func TestValidateRejectsBadInput(t *testing.T) {
	// No server is started: every case must fail before any network I/O, so
	// an unreachable resolver and port cannot change the outcome.
	v := newValidator(t, challenge.Options{Resolver: "127.0.0.1:9", HTTPPort: 9, TLSPort: 9, Timeout: time.Second})
	tests := []struct {
		name                                    string
		chType, identType, ident, tok, keyAuthz string
		fragment                                string
	}{
		{"unknown challenge type", "http-02", "dns", "example.com", token, keyAuth, `unsupported challenge type "http-02"`},
		{"unknown identifier type", "http-01", "email", "example.com", token, keyAuth, `unsupported identifier type "email"`},
		{"dns-01 for an IP", "dns-01", "ip", "192.0.2.1", token, keyAuth, "dns-01 cannot validate the ip identifier"},
		{"http-01 for a wildcard", "http-01", "dns", "*.example.com", token, keyAuth, "only dns-01"},
		{"tls-alpn-01 for a wildcard", "tls-alpn-01", "dns", "*.example.com", token, keyAuth, "only dns-01"},
		{"IP given as dns", "http-01", "dns", "192.0.2.1", token, keyAuth, "not a valid DNS name"},
		{"name given as ip", "http-01", "ip", "example.com", token, keyAuth, "not an IP address"},
		{"IP with a zone", "http-01", "ip", "fe80::1%eth0", token, keyAuth, "not an IP address"},
		{"single label", "http-01", "dns", "localhost", token, keyAuth, "not a valid DNS name"},
		{"trailing dot", "http-01", "dns", "example.com.", token, keyAuth, "not a valid DNS name"},
		{"bad characters", "http-01", "dns", "exa mple.com", token, keyAuth, "not a valid DNS name"},
		{"path in the name", "http-01", "dns", "example.com/x", token, keyAuth, "not a valid DNS name"},
		{"label too long", "http-01", "dns", strings.Repeat("a", 64) + ".com", token, keyAuth, "not a valid DNS name"},
		{"double wildcard", "dns-01", "dns", "*.*.example.com", token, keyAuth, "not a valid DNS name"},
		{"token with a path", "http-01", "dns", "example.com", "../../etc/passwd.abcdefg", "../../etc/passwd.abcdefg." + thumb, "token is not a base64url"},
		{"short token", "http-01", "dns", "example.com", "abc", "abc." + thumb, "token is not a base64url"},
		{"key authorization for another token", "http-01", "dns", "example.com", token, "x" + keyAuth, "not token.thumbprint"},
		{"key authorization without thumbprint", "http-01", "dns", "example.com", token, token + ".", "not token.thumbprint"},
		{"key authorization with spaces", "http-01", "dns", "example.com", token, keyAuth + " ", "not token.thumbprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(ctx, tt.chType, tt.identType, tt.ident, tt.tok, tt.keyAuthz)
			want(t, err, challenge.ErrMalformed, tt.fragment)
		})
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    challenge.Options
		wantErr string
	}{
		{name: "zero value uses /etc/resolv.conf", opts: challenge.Options{}},
		{name: "resolver", opts: challenge.Options{Resolver: "127.0.0.1:5353"}},
		{name: "resolver without port", opts: challenge.Options{Resolver: "127.0.0.1"}, wantErr: "Resolver"},
		{name: "HTTP port out of range", opts: challenge.Options{HTTPPort: 70000}, wantErr: "HTTPPort"},
		{name: "TLS port negative", opts: challenge.Options{TLSPort: -1}, wantErr: "TLSPort"},
		{name: "negative timeout", opts: challenge.Options{Timeout: -time.Second}, wantErr: "Timeout"},
		{name: "negative body limit", opts: challenge.Options{MaxBodyBytes: -1}, wantErr: "MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Resolver == "" {
				if _, err := os.Stat("/etc/resolv.conf"); err != nil {
					t.Skipf("no /etc/resolv.conf here: %v", err)
				}
			}
			_, err := challenge.New(tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: got %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}
