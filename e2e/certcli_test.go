package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
)

// TestCertCLI: `ca cert list|show|revoke` against a running CA. A
// revocation through the control socket is answered revoked by the OCSP
// responder at once (its cached good answer dropped) and reaches the CRL;
// with the server stopped it is recorded in the database and served after
// the restart; refusals are clear errors.
func TestCertCLI(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := func(args ...string) string { t.Helper(); return c.MustCLI(t, ctx, args...) }
	one := issueChain(t, c, goCSR(t, "one.localhost"))
	two := issueChain(t, c, goCSR(t, "two.localhost"))
	s1, s2 := string(core.SerialFromBig(one[0].SerialNumber)), string(core.SerialFromBig(two[0].SerialNumber))
	if out := cli("cert", "list", "--name", "one.localhost"); !strings.Contains(out, s1) || strings.Contains(out, s2) {
		t.Fatalf("ca cert list --name:\n%s", out)
	}
	if out := cli("cert", "list", "--under", "localhost"); !strings.Contains(out, s1) || !strings.Contains(out, s2) {
		t.Fatalf("ca cert list --under localhost:\n%s", out)
	}
	if out := cli("cert", "list", "--under", "one.localhost"); !strings.Contains(out, s1) || strings.Contains(out, s2) {
		t.Fatalf("ca cert list --under one.localhost:\n%s", out)
	}
	if out := cli("cert", "list", "--expiring-within", "30d"); strings.Contains(out, s1) || !strings.Contains(out, "localhost") {
		t.Fatalf("ca cert list --expiring-within 30d lists a 90-day certificate, or not the 7-day HTTPS one:\n%s", out)
	}
	if out := cli("cert", "show", s1); !strings.Contains(out, "one.localhost") || !strings.Contains(out, "status:     valid") {
		t.Fatalf("ca cert show:\n%s", out)
	}
	if got := parsePEMCerts(t, []byte(cli("cert", "show", s1, "--pem")))[0]; !got.Equal(one[0]) {
		t.Fatal("ca cert show --pem is not the certificate")
	}

	issuer := one[1]
	interSerial := string(core.SerialFromBig(issuer.SerialNumber))
	req1, _ := ocsp.CreateRequest(one[0], issuer, nil)
	if r := ocspGet(t, c, req1, false, one[0], issuer); r.Status != ocsp.Good { // now cached
		t.Fatalf("OCSP before: %d", r.Status)
	}
	if out := cli("cert", "revoke", s1, "--reason", "keyCompromise"); !strings.Contains(out, "through the running server") {
		t.Fatalf("ca cert revoke:\n%s", out)
	}
	if r := ocspGet(t, c, req1, false, one[0], issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("OCSP right after ca cert revoke: status %d reason %d", r.Status, r.RevocationReason)
	}
	deadline := time.Now().Add(30 * time.Second)
	for crlEntry(fetchCRL(t, c, "intermediate.crl", issuer), one[0]) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the CRL does not list the certificate revoked with the CLI")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"cert", "revoke", s1}, "is revoked"},
		{[]string{"cert", "revoke", "abcdef0123"}, "no certificate has serial"},
		{[]string{"cert", "revoke", s2, "--reason", "tired"}, `"tired"`},
		{[]string{"cert", "revoke", "zz-not-hex"}, "not hex"},
		{[]string{"cert", "revoke", s2, "--invalidity-date", "x"}, "RFC 3339"},
		{[]string{"cert", "revoke", interSerial}, "--ca"}, // a CA certificate
		{[]string{"cert", "show", "abcdef0123"}, "no certificate has serial"},
		{[]string{"cert", "list", "--status", "bogus"}, "want valid, revoked or intent"},
		{[]string{"cert", "list", "--under", "*.localhost"}, "--under: \"*.localhost\" is not a DNS name"},
		{[]string{"apikey", "revoke", "nope"}, "not an API key id (16 hex digits"},
		{[]string{"apikey", "revoke", "0123456789abcdef"}, `no API key has id "0123456789abcdef"`},
		{[]string{"apikey", "create", "--name", "x", "--expires", "0"}, "would expire at once"},
		{[]string{"apikey", "create", "--name", "x", "--profiles", "tls-sever"}, `unknown profile "tls-sever" (profiles: api-client, code-signing,`},
		{[]string{"acme", "eab", "create", "--endpoint", "nope"}, `no ACME endpoint is named "nope"`},
	} {
		if out, err := c.CLI(ctx, bad.args...); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("ca %s: %v, want a refusal with %q:\n%s", strings.Join(bad.args, " "), err, bad.want, out)
		}
	}
	// Every issuance was stored: no intent is left, and the serial pool's
	// reserved rows are not intents.
	if out := strings.TrimSpace(c.MustCLI(t, ctx, "cert", "list", "--status", "intent")); strings.Count(out, "\n") != 0 || !strings.HasPrefix(out, "SERIAL") {
		t.Errorf("ca cert list --status intent:\n%s", out)
	}

	// Not through the REST API either, even with the admin key.
	resp, body := apiCall(t, c, "POST", "/certificates/"+interSerial+"/revoke", c.AdminKey(), "application/json", "", strings.NewReader(`{"reason":"superseded"}`))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "ca cert revoke --ca") {
		t.Fatalf("REST revoke of the intermediate: %s\n%s", resp.Status, body)
	}
	if out := cli("cert", "show", interSerial); !strings.Contains(out, "status:     valid") {
		t.Fatalf("the intermediate after a refused revocation:\n%s", out)
	}

	// No server: recorded in the database, served after the start.
	c.Stop()
	if out := cli("cert", "revoke", s2, "--reason", "superseded"); !strings.Contains(out, "no server runs") {
		t.Fatalf("offline ca cert revoke:\n%s", out)
	}
	c.start()
	c.WaitReady()
	req2, _ := ocsp.CreateRequest(two[0], issuer, nil)
	if r := ocspGet(t, c, req2, false, two[0], issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Fatalf("OCSP after an offline revocation: status %d", r.Status)
	}
	// The stored CRL is served from the start; the one built at start
	// (in the background, after readiness) lists the revocation.
	for deadline = time.Now().Add(10 * time.Second); crlEntry(fetchCRL(t, c, "intermediate.crl", issuer), two[0]) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the CRL built at start does not list the offline revocation")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Revoking the intermediate itself (--ca) stops it issuing at once;
	// it was the only one, so nothing issues (the CA's state: 503).
	if out := cli("cert", "revoke", interSerial, "--ca", "--reason", "superseded"); !strings.Contains(out, "through the running server") {
		t.Fatalf("ca cert revoke --ca:\n%s", out)
	}
	resp, body = apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(goCSR(t, "after.localhost")))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no issuer can sign") {
		t.Fatalf("issuance after the intermediate was revoked: %s\n%s", resp.Status, body)
	}
}
