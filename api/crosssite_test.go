package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// TestCrossSiteRefused: a browser holding an api-client certificate with
// the revoke scope sends it to any page's request to this host. A revoke a
// foreign page sent (a form, or a no-cors fetch with a text/plain body:
// no preflight) is refused 403 and revokes nothing; the same request from a
// program (no Origin, no Sec-Fetch-Site) or from the API's own origin is
// served.
func TestCrossSiteRefused(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.ClientCertScopes = map[string][]string{"mtls:ops": {ScopeRevoke, ScopeRead}}
	})
	ctx := context.Background()
	srv, roots := e.mtlsServer(t)
	issue := func(profile, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.ParseCertificateRequest(newCSR(t, k, cn, "victim.example.com"))
		if profile == ClientProfile {
			csr, _ = x509.ParseCertificateRequest(newCSR(t, k, cn))
		}
		iss, err := e.ca.Issue(ctx, ca.Request{CSR: csr, Profile: profile, Requester: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Certificate, k
	}
	cc, ck := issue(ClientProfile, "ops")
	browser := e.clientWith(roots, cc, ck)
	revoke := func(headers map[string]string) (int, string) {
		victim, _ := issue("tls-server", "victim.example.com")
		serial := core.SerialFromBig(victim.SerialNumber)
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/certificates/"+string(serial)+"/revoke", strings.NewReader(`{"reason":"keyCompromise"}`))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rec, err := e.db.GetCertificate(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, fmt.Sprintf("%s (certificate now %s)", body, rec.Status)
	}
	self := srv.URL
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"no-cors fetch from another site", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site",
			"Sec-Fetch-Mode": "no-cors", "Content-Type": "text/plain;charset=UTF-8"}, 403},
		{"form from a sibling site", map[string]string{"Sec-Fetch-Site": "same-site", "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"older browser: Origin only", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403},
		{"a program", map[string]string{"Content-Type": "application/json"}, 200},
		{"the API's own origin", map[string]string{"Origin": self, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, detail := revoke(tc.headers)
			if got != tc.want {
				t.Fatalf("revoke = %d, want %d: %s", got, tc.want, detail)
			}
			var p Problem
			if got == 403 && (json.Unmarshal([]byte(strings.SplitN(detail, " (certificate", 2)[0]), &p) != nil || p.Type != problemBase+"crossSite" || !strings.Contains(detail, "now valid")) {
				t.Fatalf("refusal: %s", detail)
			}
		})
	}
}
