package challenge_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

const challengePath = "/.well-known/acme-challenge/" + token

func TestHTTP01(t *testing.T) {
	// A TLS server for https redirects, on a port given to the validator as
	// TLSPort.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, keyAuth)
	}))
	defer tlsSrv.Close()
	tlsPort := tlsSrv.Listener.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name      string
		handler   http.HandlerFunc
		opts      func(*challenge.Options)
		wantType  string
		fragments []string
		hidden    []string // must not appear in the detail
	}{
		{name: "success, trailing newline trimmed", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != challengePath || r.Host != "example.com" || r.Method != http.MethodGet {
				http.Error(w, "wrong request "+r.Method+" "+r.Host+r.URL.Path, http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, keyAuth+"\r\n")
		}},
		{name: "wrong body", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, token+".someoneelse")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"someoneelse", "http://example.com:", challengePath}},
		{name: "stale token, this account's thumbprint: shown", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "staletokenstaletoken."+thumb)
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{`returned "staletokenstaletoken.` + thumb + `"`}},
		{name: "key authorization of 128 characters is shown", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, token+"."+strings.Repeat("t", 128-len(token)-1))
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{`"` + token + "." + strings.Repeat("t", 128-len(token)-1) + `"`}},
		{name: "key authorization of 129 characters is not", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, token+"."+strings.Repeat("t", 128-len(token)))
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"129 bytes that are not"}, hidden: []string{"ttt"}},
		// A body that is not shaped like a key authorization may be a page
		// the client could not read itself (a redirect, or its name
		// pointing at an internal server): only its length is reported.
		{name: "internal page is not echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "INTERNAL-SECRET-DATA: password=hunter2\n")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"returned 39 bytes that are not the key authorization"},
			hidden: []string{"SECRET", "hunter2"}},
		{name: "long base64url body is not echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.Repeat("x", 2000))
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"2000 bytes that are not the key authorization"},
			hidden: []string{"xxx"}},
		// Base64url alone is not enough: role names, instance ids and keys
		// are base64url too.
		{name: "base64url page is not echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "INTERNAL-SECRET-DATA")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"20 bytes that are not"}, hidden: []string{"SECRET"}},
		{name: "token.thumbprint-shaped page for neither is not echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "AKIAEXAMPLE.wJalrXUtnFEMI_K7MDENG")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"33 bytes that are not"}, hidden: []string{"AKIA", "wJal"}},
		{name: "two dots is not key-authorization-shaped", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "secret.internal.name")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"20 bytes that are not"}, hidden: []string{"secret"}},
		{name: "control characters are not echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "\x1b[31mforged\nline")
		}, wantType: challenge.ErrIncorrectResponse, fragments: []string{"16 bytes that are not"}, hidden: []string{"forged"}},
		{name: "empty body", handler: func(w http.ResponseWriter, r *http.Request) {},
			wantType: challenge.ErrIncorrectResponse, fragments: []string{"returned an empty body"}},
		{name: "not found, body not echoed", handler: http.NotFound,
			wantType: challenge.ErrUnauthorized, fragments: []string{"returned HTTP 404, want 200"}, hidden: []string{"page not found"}},
		{name: "error page not echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "INTERNAL-SECRET-DATA", http.StatusInternalServerError)
		}, wantType: challenge.ErrUnauthorized, fragments: []string{"HTTP 500"}, hidden: []string{"SECRET"}},
		{name: "body too large", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, keyAuth+strings.Repeat(" ", 200))
		}, opts: func(o *challenge.Options) { o.MaxBodyBytes = 100 },
			wantType: challenge.ErrUnauthorized, fragments: []string{"larger than 100 bytes"}},
		{name: "redirect followed", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				fmt.Fprint(w, keyAuth)
				return
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}},
		{name: "redirect to https on TLSPort, certificate not checked", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://example.com:"+strconv.Itoa(tlsPort)+"/x", http.StatusMovedPermanently)
		}, opts: func(o *challenge.Options) { o.TLSPort = tlsPort }},
		{name: "redirect loop", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/a" {
				http.Redirect(w, r, challengePath, http.StatusFound)
				return
			}
			http.Redirect(w, r, "/a", http.StatusFound)
		}, wantType: challenge.ErrConnection, fragments: []string{"redirect loop", "/a"}},
		{name: "too many redirects", handler: func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			http.Redirect(w, r, fmt.Sprintf("/next?n=%d", n+1), http.StatusFound)
		}, opts: func(o *challenge.Options) { o.MaxRedirects = 3 },
			wantType: challenge.ErrConnection, fragments: []string{"too many redirects (more than 3)", "n=3"}},
		{name: "redirects disabled", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, opts: func(o *challenge.Options) { o.MaxRedirects = -1 },
			wantType: challenge.ErrConnection, fragments: []string{"too many redirects (more than 0)"}},
		{name: "redirect to a port that is not allowed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.com:8081/x", http.StatusFound)
		}, wantType: challenge.ErrConnection, fragments: []string{"port must be 80 or"}},
		{name: "redirect with credentials", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://user:s3cret@example.com:8081/x", http.StatusFound)
		}, wantType: challenge.ErrConnection, fragments: []string{"port must be 80 or", "example.com:8081/x"}, hidden: []string{"s3cret", "user:"}},
		{name: "redirect to another scheme", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "ftp://example.com/x", http.StatusFound)
		}, wantType: challenge.ErrConnection, fragments: []string{"only http and https"}},
		{name: "redirect to an unresolvable host", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "http://nowhere.invalid/x")
			w.WriteHeader(http.StatusFound)
		}, opts: func(o *challenge.Options) { o.Resolver = challengetest.NewDNSServer(t).Addr() },
			wantType: challenge.ErrDNS, fragments: []string{"nowhere.invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			opts := challenge.Options{
				HTTPPort:     srv.Listener.Addr().(*net.TCPAddr).Port,
				HostOverride: map[string]string{"example.com": "127.0.0.1"},
			}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			err := newValidator(t, opts).Validate(ctx, challenge.HTTP01, challenge.IdentDNS, "example.com", token, keyAuth)
			want(t, err, tt.wantType, tt.fragments...)
			for _, h := range tt.hidden {
				if err != nil && strings.Contains(err.Error(), h) {
					t.Errorf("detail %q shows %q", err, h)
				}
			}
			if err != nil && len(err.Error()) > 600 {
				t.Errorf("detail is %d bytes long, want it truncated", len(err.Error()))
			}
		})
	}
}

func TestHTTP01Network(t *testing.T) {
	resp := challengetest.NewHTTP01Server(t)
	resp.SetToken(token, keyAuth)
	dnsSrv := challengetest.NewDNSServer(t)
	dnsSrv.SetA("www.example.org", "127.0.0.1")
	dnsSrv.SetA("v6.example.org", "::1")
	hole, _ := blackhole(t)

	tests := []struct {
		name       string
		port       int
		identType  string
		identValue string
		opts       challenge.Options
		wantType   string
		fragments  []string
	}{
		{name: "IPv4 identifier", port: resp.Port(), identType: challenge.IdentIP, identValue: "127.0.0.1"},
		{name: "A record from the configured resolver", port: resp.Port(), identType: challenge.IdentDNS,
			identValue: "www.example.org", opts: challenge.Options{Resolver: dnsSrv.Addr()}},
		{name: "no address record", port: resp.Port(), identType: challenge.IdentDNS,
			identValue: "missing.example.org", opts: challenge.Options{Resolver: dnsSrv.Addr()},
			wantType: challenge.ErrDNS, fragments: []string{"no A or AAAA record found for missing.example.org"}},
		{name: "AAAA only, nothing listening on ::1", port: resp.Port(), identType: challenge.IdentDNS,
			identValue: "v6.example.org", opts: challenge.Options{Resolver: dnsSrv.Addr()},
			wantType: challenge.ErrConnection, fragments: []string{"v6.example.org"}},
		{name: "connection refused", port: closedPort(t), identType: challenge.IdentIP, identValue: "127.0.0.1",
			wantType: challenge.ErrConnection, fragments: []string{"connection refused"}},
		{name: "server never answers", port: hole, identType: challenge.IdentIP, identValue: "127.0.0.1",
			opts: challenge.Options{Timeout: 300 * time.Millisecond}, wantType: challenge.ErrConnection,
			fragments: []string{"timed out", "http://127.0.0.1:"}},
		{name: "token unknown to the server", port: resp.Port(), identType: challenge.IdentIP, identValue: "127.0.0.1",
			wantType: challenge.ErrUnauthorized, fragments: []string{"HTTP 404"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.HTTPPort = tt.port
			tok, ka := token, keyAuth
			if tt.name == "token unknown to the server" {
				tok, ka = "unknownunknownunknown", "unknownunknownunknown."+thumb
			}
			err := newValidator(t, tt.opts).Validate(ctx, challenge.HTTP01, tt.identType, tt.identValue, tok, ka)
			want(t, err, tt.wantType, tt.fragments...)
		})
	}
}

func TestHTTP01IPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	var host string
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		fmt.Fprint(w, keyAuth)
	})}}
	srv.Start()
	defer srv.Close()
	v := newValidator(t, challenge.Options{HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	want(t, v.Validate(ctx, challenge.HTTP01, challenge.IdentIP, "::1", token, keyAuth), "")
	if host != "[::1]" {
		t.Errorf("Host header %q, want [::1]", host)
	}
}
