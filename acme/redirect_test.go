package acme_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/acme/challenge"
)

// failingPolicy fails every check with an internal error.
type failingPolicy struct{ suffixPolicy }

func (failingPolicy) CheckIdentifiers(context.Context, string, []acme.Identifier, string) error {
	return errors.New("policy store unreachable at db.internal:5432")
}

// TestRedirectPolicy: a redirect target's host must be an identifier an
// order on the endpoint could name; the refusal says why, in the words an
// order would get, and nothing internal.
func TestRedirectPolicy(t *testing.T) {
	ra := &acme.RAPolicy{Authority: newProdEnv(t).auth} // allows names under benchSuffix, no IP address
	tests := []struct {
		name      string
		policy    acme.Policy
		host      string
		fragments []string // nil: allowed
		hidden    string
	}{
		{name: "ra: name under the allowed suffix", policy: ra, host: "www." + benchSuffix},
		{name: "ra: name outside the allowed suffixes", policy: ra, host: "vault.corp.example.net",
			fragments: []string{"not an identifier this endpoint issues for", "dns vault.corp.example.net"}},
		{name: "ra: loopback IP, policy allows no IP", policy: ra, host: "127.0.0.1",
			fragments: []string{"ip 127.0.0.1: is an IP address, and policy allows none"}},
		{name: "ra: cloud metadata IP", policy: ra, host: "169.254.169.254",
			fragments: []string{"ip 169.254.169.254"}},
		{name: "fake: name outside", policy: suffixPolicy{suffix: "example.com"}, host: "internal.example.net",
			fragments: []string{"name is outside example.com"}},
		{name: "no policy: syntax still checked", host: "a_b.example.com",
			fragments: []string{"dns a_b.example.com: DNS names may only contain letters, digits and hyphens"}},
		{name: "no policy: IP allowed, as in orders", host: "10.0.0.1"},
		{name: "policy failing: generic refusal", policy: failingPolicy{}, host: "a.example.com",
			fragments: []string{"could not be checked"}, hidden: "db.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := acme.RedirectPolicy("test", tt.policy)(context.Background(), tt.host)
			if tt.fragments == nil {
				if err != nil {
					t.Fatalf("%s refused: %v", tt.host, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s allowed", tt.host)
			}
			for _, f := range tt.fragments {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("refusal %q does not mention %q", err, f)
				}
			}
			if tt.hidden != "" && strings.Contains(err.Error(), tt.hidden) {
				t.Errorf("refusal %q shows %q", err, tt.hidden)
			}
		})
	}
}

// TestHTTP01RedirectOutsidePolicy: through the endpoint, wired as cmd/ca
// wires it, a client whose http-01 server redirects the validator to a host
// outside the endpoint's policy gets an invalid challenge that names the
// target, and the target is never connected to.
func TestHTTP01RedirectOutsidePolicy(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/secret" {
			fmt.Fprint(w, "INTERNAL-SECRET-DATA")
			return
		}
		port := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port
		http.Redirect(w, r, fmt.Sprintf("http://internal.example.net:%d/secret", port), http.StatusFound)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	policy := suffixPolicy{suffix: "example.com"}
	v, err := challenge.New(challenge.Options{Resolver: "127.0.0.1:1", HTTPPort: srv.Listener.Addr().(*net.TCPAddr).Port,
		HostOverride:    map[string]string{"a.example.com": "127.0.0.1", "internal.example.net": "127.0.0.1"},
		RedirectAllowed: acme.RedirectPolicy("test", policy)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *acme.Options) {
		o.Policy = policy
		o.Validator = acme.ValidatorFunc(v.Validate)
	})
	c := newRawClient(e)
	c.register(nil)
	o := decode[orderDoc](t, c.post(e.url("new-order"), map[string]any{
		"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}, nil))
	a := c.validate(o.Authorizations[0], "http-01", false)
	if a.Status != "invalid" {
		t.Fatalf("authorization %s, want invalid", a.Status)
	}
	for _, ch := range a.Challenges {
		if ch.Type != "http-01" {
			continue
		}
		if ch.Error == nil || ch.Error.Type != "urn:ietf:params:acme:error:connection" ||
			!strings.Contains(ch.Error.Detail, "to http://internal.example.net:") ||
			!strings.Contains(ch.Error.Detail, "refused: not an identifier this endpoint issues for") {
			t.Errorf("challenge error %+v, want a connection problem refusing internal.example.net", ch.Error)
		}
		if ch.Error != nil && strings.Contains(ch.Error.Detail, "SECRET") {
			t.Errorf("challenge error %q shows the target's body", ch.Error.Detail)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("server accepted %d connections, want 1: the redirect target was connected to", conns)
	}
}
