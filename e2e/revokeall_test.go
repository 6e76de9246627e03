package e2e

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
)

// TestRevokeAll: an API key leaked. Revoking it points at `ca cert
// revoke-all --requester`; without --yes that lists and revokes nothing;
// with it, what the key asked for is revoked through the running server
// (OCSP says so at once) and another key's certificate is left alone.
func TestRevokeAll(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := c.MustCLI(t, ctx, "apikey", "create", "--name", "deploy", "--scopes", "issue")
	m := regexp.MustCompile(`id:\s+(\S+)\s+secret:\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("apikey create:\n%s", out)
	}
	id, secret := m[1], m[2]
	var leaked []string
	for _, name := range []string{"one.localhost", "two.localhost"} {
		resp, body := apiCall(t, c, "POST", "/certificates", secret, "application/pkcs10", "application/pem-certificate-chain", bytes.NewReader(goCSR(t, name)))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("issue with the deploy key: %s\n%s", resp.Status, body)
		}
		leaked = append(leaked, string(core.SerialFromBig(parsePEMCerts(t, body)[0].SerialNumber)))
	}
	bystander := issueChain(t, c, goCSR(t, "three.localhost"))

	if out := c.MustCLI(t, ctx, "apikey", "revoke", id); !strings.Contains(out, "ca cert revoke-all --requester apikey:"+id) {
		t.Fatalf("apikey revoke does not point at revoke-all:\n%s", out)
	}
	out = c.MustCLI(t, ctx, "cert", "revoke-all", "--requester", "apikey:"+id, "--reason", "affiliationChanged")
	if !strings.Contains(out, "would revoke 2 certificate(s)") || !strings.Contains(out, leaked[0]) || !strings.Contains(out, "nothing was revoked") {
		t.Fatalf("dry run:\n%s", out)
	}
	if out := c.MustCLI(t, ctx, "cert", "list", "--status", "revoked"); strings.Contains(out, leaked[0]) {
		t.Fatalf("the dry run revoked:\n%s", out)
	}
	out = c.MustCLI(t, ctx, "cert", "revoke-all", "--requester", "apikey:"+id, "--reason", "affiliationChanged", "--yes")
	if !strings.Contains(out, "revoked 2 of 2 certificate(s)") || !strings.Contains(out, "through the running server") {
		t.Fatalf("revoke-all --yes:\n%s", out)
	}
	for _, s := range leaked {
		if out := c.MustCLI(t, ctx, "cert", "show", s); !strings.Contains(out, "affiliationChanged") {
			t.Fatalf("%s after revoke-all:\n%s", s, out)
		}
	}
	req, _ := ocsp.CreateRequest(bystander[0], bystander[1], nil)
	if r := ocspGet(t, c, req, false, bystander[0], bystander[1]); r.Status != ocsp.Good {
		t.Fatalf("another key's certificate after revoke-all: OCSP status %d", r.Status)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--reason", "superseded", "--yes"}, "never revokes everything"},
		{[]string{"--requester", id}, "want KIND:ID"}, // the id without "apikey:"
		{[]string{"--under", "0.1"}, "not a DNS name"},
		{[]string{"--name", "x.localhost", "--invalidity-date", "2099-01-01T00:00:00Z"}, "in the future"},
	} {
		if out, err := c.CLI(ctx, append([]string{"cert", "revoke-all"}, bad.args...)...); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("revoke-all %v: %v, want %q:\n%s", bad.args, err, bad.want, out)
		}
	}
	// Offline too: nothing is recorded with an impossible date.
	c.Stop()
	if out, err := c.CLI(ctx, "cert", "revoke", string(core.SerialFromBig(bystander[0].SerialNumber)), "--invalidity-date", "1900-01-01T00:00:00Z"); err == nil || !strings.Contains(out, "before 1970") {
		t.Fatalf("offline revoke with an invalidity date in 1900: %v\n%s", err, out)
	}
}
