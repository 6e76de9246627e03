package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
)

// TestClientCertificateAuth serves the API over TLS asking for client
// certificates (as the server package does) and checks the mapping of a
// client certificate to a principal and scopes.
func TestClientCertificateAuth(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.ClientCertScopes = map[string][]string{"mtls:deploy": {ScopeRead}, "mtls:ops-*": {ScopeIssue, ScopeRead}}
	})
	ctx := context.Background()
	issue := func(profile string, key *ecdsa.PrivateKey, cn string, names ...string) *x509.Certificate {
		csr, _ := x509.ParseCertificateRequest(newCSR(t, key, cn, names...))
		iss, err := e.ca.Issue(ctx, ca.Request{CSR: csr, Profile: profile, Requester: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Certificate
	}
	srv, roots := e.mtlsServer(t)
	clientWith := func(profile, cn string, names ...string) (*http.Client, *x509.Certificate) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := issue(profile, k, cn, names...)
		return e.clientWith(roots, c, k), c
	}
	call := func(c *http.Client, method, path string) int {
		req, _ := http.NewRequest(method, srv.URL+"/api/v1"+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	clientFor := func(cn string) (*http.Client, *x509.Certificate) { return clientWith(ClientProfile, cn) }
	deploy, deployCert := clientFor("deploy")
	// Anyone who may issue an ordinary tls-client certificate picks its
	// common name: such a certificate must not log in as "deploy".
	impostor, _ := clientWith("tls-client", "deploy")
	// Only renewal takes a certificate without clientAuth.
	server, _ := clientWith("tls-server", "deploy", "deploy.corp.internal")
	ops, _ := clientFor("ops-1")
	other, _ := clientFor("someone")
	// "mtls:ops-1/x" would own key-service keys under "mtls:ops-1/".
	slash, _ := clientFor("ops-1/x")
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	cases := []struct {
		name   string
		c      *http.Client
		method string
		path   string
		want   int
	}{
		{"read scope by exact pattern", deploy, "GET", "/certificates", 200},
		{"no issue scope", deploy, "POST", "/certificates", 403},
		{"prefix pattern grants issue", ops, "POST", "/certificates", 400}, // authorised; the empty body is malformed
		{"unmapped certificate has no scopes", other, "GET", "/certificates", 403},
		{"no certificate, no key", anon, "GET", "/certificates", 401},
		{"tls-client certificate with a mapped name", impostor, "GET", "/certificates", 401},
		{"serverAuth-only certificate", server, "GET", "/certificates", 401},
		{"a common name with a slash", slash, "GET", "/certificates", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(tc.c, tc.method, tc.path); got != tc.want {
				t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, got, tc.want)
			}
		})
	}
	if err := e.ca.Revoke(ctx, core.SerialFromBig(deployCert.SerialNumber), core.ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	deploy.Transport.(*http.Transport).CloseIdleConnections()
	if got := call(deploy, "GET", "/certificates"); got != 401 {
		t.Fatalf("revoked client certificate: %d, want 401", got)
	}
	// A certificate chaining to our CA that we hold no record of (as after
	// restoring a database from before it was issued) may have been
	// revoked since: no access.
	unknown, unknownCert := clientFor("deploy")
	if _, err := e.db.Exec(ctx, `DELETE FROM certificates WHERE serial = ?`, string(core.SerialFromBig(unknownCert.SerialNumber))); err != nil {
		t.Fatal(err)
	}
	if got := call(unknown, "GET", "/certificates"); got != 401 {
		t.Fatalf("client certificate without a record: %d, want 401", got)
	}
	// A certificate signed with our CA's key (a leaked one, say) that
	// reuses the serial of one we issued is not that certificate, whatever
	// name it gives itself.
	_, victim := clientFor("someone-else")
	forgedKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := *victim
	tmpl.Subject.CommonName = "ops-9"
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, e.inter.Certificate(), forgedKey.Public(), e.inter.Signer())
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := x509.ParseCertificate(der)
	if got := call(e.clientWith(roots, forged, forgedKey), "POST", "/certificates"); got != 401 {
		t.Fatalf("a forged certificate reusing a recorded serial: %d, want 401", got)
	}
}

// mtlsServer serves the API over TLS asking for client certificates from
// our CA and leaving their verification to the API, as the server package
// does; it returns the server and a pool holding the root.
func (e *env) mtlsServer(t *testing.T) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	srvCert, roots := e.serverCert(t)
	srv := httptest.NewUnstartedServer(e.engine)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequestClientCert, ClientCAs: roots}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, roots
}

// clientWith is an HTTPS client presenting cert (and the intermediate).
func (e *env) clientWith(roots *x509.CertPool, cert *x509.Certificate, key crypto.Signer) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, e.inter.Certificate().Raw}, PrivateKey: key}}}}}
}

// TestClientCertificateLimits: client_cert_limits narrow what a client
// certificate may issue, the exact pattern before the longest prefix.
func TestClientCertificateLimits(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.ClientCertScopes = map[string][]string{"mtls:ops-*": {ScopeIssue}}
		o.ClientCertLimits = map[string]Limits{"mtls:ops-*": {Names: []string{"ops.corp.internal"}},
			"mtls:ops-db": {Names: []string{"db.corp.internal"}, Profiles: []string{"tls-server"}}}
	})
	srv, roots := e.mtlsServer(t)
	client := func(cn string) *http.Client {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.ParseCertificateRequest(newCSR(t, k, cn))
		iss, err := e.ca.Issue(context.Background(), ca.Request{CSR: csr, Profile: ClientProfile, Requester: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return e.clientWith(roots, iss.Certificate, k)
	}
	issue := func(c *http.Client, name string) int {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/certificates", bytes.NewReader(jsonBody(t, map[string]string{"csr": pemCSR(newCSR(t, k, "", name))})))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	ops, db := client("ops-1"), client("ops-db")
	for _, tc := range []struct {
		c    *http.Client
		name string
		want int
	}{
		{ops, "web.ops.corp.internal", 201},
		{ops, "web.corp.internal", 403},
		{db, "db.corp.internal", 201},
		{db, "web.ops.corp.internal", 403}, // the exact pattern wins over ops-*
	} {
		if got := issue(tc.c, tc.name); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if _, err := New(Options{Authority: e.api.auth, Store: e.db, Issuers: e.api.issuers,
		ClientCertLimits: map[string]Limits{"mtls:x": {Names: []string{"*.bad"}}}}); err == nil {
		t.Fatal("a bad client certificate limit was accepted")
	}
}

// An expired client certificate is refused as expired, not as one that
// "does not verify against this CA" (an operator would look for a trust
// problem).
func TestExpiredClientCertificateSaysSo(t *testing.T) {
	later := time.Now().Add(400 * 24 * time.Hour) // after the certificate's 90 days
	e := newEnv(t, nil, func(o *Options) {
		o.ClientCertScopes = map[string][]string{"mtls:deploy": {ScopeRead}}
		o.Now = func() time.Time { return later }
	})
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.ParseCertificateRequest(newCSR(t, k, "deploy"))
	iss, err := e.ca.Issue(context.Background(), ca.Request{CSR: csr, Profile: ClientProfile, Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv, roots := e.mtlsServer(t)
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/certificates", nil)
	resp, err := e.clientWith(roots, iss.Certificate, k).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "the client certificate expired at") {
		t.Fatalf("expired client certificate: %d %s", resp.StatusCode, body)
	}
}
