package challenge_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// targetServer is an http-01 server on 127.0.0.1 that answers the
// challenge path by redirecting to redirect (or with the key authorization
// if redirect is ""), /ok with the key authorization, and /secret with
// something no client should read. It counts the connections it accepts.
type targetServer struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
	paths []string
}

func newTargetServer(t *testing.T, redirect func(port int) string) *targetServer {
	t.Helper()
	s := &targetServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		switch r.URL.Path {
		case challengePath:
			if redirect == nil {
				fmt.Fprint(w, keyAuth)
				return
			}
			w.Header().Set("Location", redirect(s.port()))
			w.WriteHeader(http.StatusFound)
		case "/ok":
			fmt.Fprint(w, keyAuth)
		case "/secret":
			fmt.Fprint(w, "INTERNAL-SECRET-DATA")
		default:
			http.NotFound(w, r)
		}
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *targetServer) port() int { return s.Listener.Addr().(*net.TCPAddr).Port }

// connections is how many connections the server accepted. A connection
// the validator made has been counted once Validate returns: the validator
// waits for the response, and ConnState runs before the request is read.
func (s *targetServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// TestHTTP01RedirectAllowed: a redirect target goes to RedirectAllowed
// before anything connects to it (the ACME server passes its identifier
// policy there); a refused target is never connected to.
func TestHTTP01RedirectAllowed(t *testing.T) {
	// policy accepts the identifier and allowed.example.com, nothing else.
	policy := func(asked *[]string) func(context.Context, string) error {
		return func(_ context.Context, host string) error {
			*asked = append(*asked, host)
			if host == "example.com" || host == "allowed.example.com" {
				return nil
			}
			return fmt.Errorf("%s is not allowed by the test policy", host)
		}
	}
	tests := []struct {
		name      string
		location  string // %d is the server's port
		noHook    bool
		wantType  string
		fragments []string
		wantAsked string // the host RedirectAllowed was asked about
	}{
		{name: "name outside the policy", location: "http://other.example.com:%d/secret",
			wantType:  challenge.ErrConnection,
			fragments: []string{"to http://other.example.com:", "refused: other.example.com is not allowed by the test policy"},
			wantAsked: "other.example.com"},
		{name: "IP literal", location: "http://127.0.0.1:%d/secret",
			wantType:  challenge.ErrConnection,
			fragments: []string{"refused: 127.0.0.1 is not allowed"}, wantAsked: "127.0.0.1"},
		{name: "IPv6 literal, asked without brackets", location: "http://[::1]:%d/secret",
			wantType: challenge.ErrConnection, fragments: []string{"refused: ::1 is not allowed"}, wantAsked: "::1"},
		{name: "allowed name, asked in lowercase", location: "http://Allowed.Example.COM:%d/ok",
			wantAsked: "allowed.example.com"},
		{name: "no hook: any host, as before", location: "http://other.example.com:%d/ok", noHook: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTargetServer(t, func(port int) string { return fmt.Sprintf(tt.location, port) })
			var asked []string
			opts := challenge.Options{HTTPPort: srv.port(), HostOverride: map[string]string{
				"example.com": "127.0.0.1", "other.example.com": "127.0.0.1", "allowed.example.com": "127.0.0.1"}}
			if !tt.noHook {
				opts.RedirectAllowed = policy(&asked)
			}
			err := newValidator(t, opts).Validate(ctx, challenge.HTTP01, challenge.IdentDNS, "example.com", token, keyAuth)
			want(t, err, tt.wantType, tt.fragments...)
			if tt.wantAsked != "" && (len(asked) != 1 || asked[0] != tt.wantAsked) {
				t.Errorf("RedirectAllowed asked about %q, want only %q", asked, tt.wantAsked)
			}
			if tt.wantType != "" {
				if n := srv.connections(); n != 1 {
					t.Errorf("server accepted %d connections, want 1: the refused target was connected to", n)
				}
				if err != nil && strings.Contains(err.Error(), "SECRET") {
					t.Errorf("detail %q shows the target's body", err)
				}
			}
		})
	}
}

// TestHTTP01OtherHostsLocationNotShown: a URL that a host other than the
// identifier redirected to is named by its origin only, since its path and
// query are that host's content; the hops the identifier chose are shown
// whole.
func TestHTTP01OtherHostsLocationNotShown(t *testing.T) {
	tests := []struct {
		name      string
		next      string // where internal.example.com/hop redirects
		wantType  string
		fragments []string // %d is the server's port
	}{
		{name: "final URL", next: "/private/path?session=s3cr3t", wantType: challenge.ErrUnauthorized,
			fragments: []string{"GET http://internal.example.com:%d/… returned HTTP 404"}},
		{name: "refused redirect", next: "http://internal.example.com:8081/private/path?session=s3cr3t",
			wantType:  challenge.ErrConnection,
			fragments: []string{"redirect from http://internal.example.com:%d/hop to http://internal.example.com:8081/…: port must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				port := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port
				switch r.URL.Path {
				case challengePath:
					http.Redirect(w, r, fmt.Sprintf("http://internal.example.com:%d/hop", port), http.StatusFound)
				case "/hop":
					http.Redirect(w, r, tt.next, http.StatusFound)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			port := srv.Listener.Addr().(*net.TCPAddr).Port
			v := newValidator(t, challenge.Options{HTTPPort: port,
				HostOverride: map[string]string{"example.com": "127.0.0.1", "internal.example.com": "127.0.0.1"}})
			err := v.Validate(ctx, challenge.HTTP01, challenge.IdentDNS, "example.com", token, keyAuth)
			var fragments []string
			for _, f := range tt.fragments {
				fragments = append(fragments, fmt.Sprintf(f, port))
			}
			want(t, err, tt.wantType, fragments...)
			if err != nil && (strings.Contains(err.Error(), "private") || strings.Contains(err.Error(), "s3cr3t")) {
				t.Errorf("detail %q shows where internal.example.com redirected", err)
			}
		})
	}
}

// TestNeverDialled: link-local, unspecified, multicast and broadcast
// addresses are never connected to, whether they are the identifier, what
// its name resolves to or where a redirect leads — unless HostOverride maps
// the name to the address. The server listens on 127.0.0.1 and answers
// every request with the key authorization, and Linux sends connections
// for 0.0.0.0 to it: without the rule those validations would succeed.
func TestNeverDialled(t *testing.T) {
	srv := newTargetServer(t, nil)
	dnsSrv := challengetest.NewDNSServer(t)
	dnsSrv.SetA("meta.example.org", "169.254.169.254")
	dnsSrv.SetA("zero.example.org", "0.0.0.0")
	dnsSrv.SetA("v6ll.example.org", "fe80::1")
	dnsSrv.SetA("mixed.example.org", "169.254.169.254", "127.0.0.1")
	dnsSrv.SetA("www.example.org", "127.0.0.1")
	redirector := newTargetServer(t, func(port int) string { return fmt.Sprintf("http://zero.example.org:%d/ok", port) })

	tests := []struct {
		name             string
		chType           string
		identType, ident string
		override         map[string]string
		port             int // HTTPPort; 0: srv's
		wantType         string
		fragments        []string
	}{
		{name: "link-local IP identifier", identType: challenge.IdentIP, ident: "169.254.169.254",
			wantType: challenge.ErrConnection, fragments: []string{"169.254.169.254 is a link-local address: never dialled for validation"}},
		{name: "IPv6 link-local IP identifier", identType: challenge.IdentIP, ident: "fe80::1",
			wantType: challenge.ErrConnection, fragments: []string{"fe80::1 is a link-local address"}},
		{name: "unspecified IP identifier", identType: challenge.IdentIP, ident: "0.0.0.0",
			wantType: challenge.ErrConnection, fragments: []string{"0.0.0.0 is the unspecified address"}},
		{name: "IPv6 unspecified IP identifier", identType: challenge.IdentIP, ident: "::",
			wantType: challenge.ErrConnection, fragments: []string{":: is the unspecified address"}},
		{name: "multicast IP identifier", identType: challenge.IdentIP, ident: "224.0.0.1",
			wantType: challenge.ErrConnection, fragments: []string{"224.0.0.1 is a multicast address"}},
		{name: "IPv6 multicast IP identifier", identType: challenge.IdentIP, ident: "ff02::1",
			wantType: challenge.ErrConnection, fragments: []string{"ff02::1 is a multicast address"}},
		{name: "AWS IPv6 metadata IP identifier", identType: challenge.IdentIP, ident: "fd00:ec2::254",
			wantType: challenge.ErrConnection, fragments: []string{"fd00:ec2::254 is a cloud metadata service's address"}},
		{name: "Alibaba metadata IP identifier", identType: challenge.IdentIP, ident: "100.100.100.200",
			wantType: challenge.ErrConnection, fragments: []string{"100.100.100.200 is a cloud metadata service's address"}},
		{name: "broadcast IP identifier", identType: challenge.IdentIP, ident: "255.255.255.255",
			wantType: challenge.ErrConnection, fragments: []string{"255.255.255.255 is the IPv4 broadcast address"}},
		{name: "name resolving to cloud metadata", ident: "meta.example.org", wantType: challenge.ErrConnection,
			fragments: []string{"meta.example.org has no address validation may connect to: 169.254.169.254 is a link-local address"}},
		{name: "name resolving to 0.0.0.0", ident: "zero.example.org", wantType: challenge.ErrConnection,
			fragments: []string{"zero.example.org has no address", "0.0.0.0 is the unspecified address"}},
		{name: "name resolving to IPv6 link-local", ident: "v6ll.example.org", wantType: challenge.ErrConnection,
			fragments: []string{"fe80::1 is a link-local address"}},
		{name: "link-local address skipped, the other used", ident: "mixed.example.org"},
		{name: "tls-alpn-01 too", chType: challenge.TLSALPN01, ident: "zero.example.org",
			wantType: challenge.ErrConnection, fragments: []string{"0.0.0.0 is the unspecified address"}},
		{name: "redirect to a name resolving to 0.0.0.0", ident: "www.example.org", port: redirector.port(),
			wantType: challenge.ErrConnection, fragments: []string{"zero.example.org has no address"}},
		{name: "override to the address is dialled", ident: "example.com",
			override: map[string]string{"example.com": "0.0.0.0"}},
		{name: "override to a name is not an address", ident: "example.com",
			override: map[string]string{"example.com": "zero.example.org"},
			wantType: challenge.ErrConnection, fragments: []string{"0.0.0.0 is the unspecified address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chType, identType, port := tt.chType, tt.identType, tt.port
			if chType == "" {
				chType = challenge.HTTP01
			}
			if identType == "" {
				identType = challenge.IdentDNS
			}
			if port == 0 {
				port = srv.port()
			}
			v := newValidator(t, challenge.Options{Resolver: dnsSrv.Addr(), HTTPPort: port, TLSPort: srv.port(),
				HostOverride: tt.override, Timeout: 2 * time.Second})
			err := v.Validate(ctx, chType, identType, tt.ident, token, keyAuth)
			want(t, err, tt.wantType, tt.fragments...)
		})
	}
}
