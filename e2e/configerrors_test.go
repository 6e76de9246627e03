package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// TestServeRefusesBadConfiguration: `ca serve` with a configuration
// mistake exits at once with a message naming the key and what is wrong,
// in the operator's words (YAML keys, not Go types), instead of starting
// with a setting that does nothing or the wrong thing.
func TestServeRefusesBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(caBinary, "init", "--data", dir, "--listen-https", fmt.Sprintf("127.0.0.1:%d", challengetest.FreePort(t)),
		"--listen-http", fmt.Sprintf("127.0.0.1:%d", challengetest.FreePort(t))).CombinedOutput()
	if err != nil {
		t.Fatalf("ca init: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "strongroom.yaml")
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"hostnme: ca.corp.internal", `unknown key "hostnme" (known here: acme, api, ca, crl, database, hostname,`},
		{"policy: {allowed_suffixes: [corp.internal]}", `unknown key "allowed_suffixes" (known here: allow_email_sans,`},
		{"policy: {allowed_dns_suffixes: [corp..internal]}", `allowed DNS suffix "corp..internal" is not a DNS name`},
		{"policy: {max_lifetime: {tls-sever: 24h}}", `policy: max_lifetime: unknown profile "tls-sever"`},
		{"issuance: {default_profile: tls}", `issuance.default_profile: the CA has no profile "tls" (it has api-client,`},
		{"issuance: {exclude_lints: [e_no_such_lint]}", `issuance.exclude_lints: "e_no_such_lint" is not a zlint lint`},
		{"issuance: {backdate: -1h}", "issuance.backdate: -1h0m0s is negative"},
		{"issuance: {urls: {ocsp: [ocsp.corp.internal]}}", `URL "ocsp.corp.internal" is not an absolute http:// or https:// URL`},
		{"ocsp: {validity: -5h}", "ocsp.validity: -5h0m0s is negative"},
		{"crl: {debounce: -1s}", "crl.debounce: -1s is negative"},
		{"ocsp: {validity: 1h, refresh_before: 2h}", "ocsp.refresh_before: 2h0m0s must be shorter than ocsp.validity (1h0m0s)"},
		{"acme: {validation: {http_port: 70000}}", "acme.validation.http_port: 70000 is not a port"},
		{"acme: {validation: {timeout: -1s}}", "acme.validation.timeout: -1s is negative"},
		{"acme: {endpoints: [{name: a, default_profile: nosuch}]}", `acme.endpoints[0].default_profile: "nosuch" is not among the endpoint's profiles (tls-server, tls-server-client)`},
		{"api: {versions_per_key: -1}", "api.versions_per_key: -1 is negative"},
		{"api: {client_cert_scopes: {'mtls:x': [bogus]}}", `api.client_cert_scopes: "mtls:x": unknown scope "bogus"`},
		{"acme: {endpoints: [{name: a, order_lifetime: -1h}]}", "acme.endpoints[0].order_lifetime: -1h0m0s is negative"},
		{"acme: {endpoints: [{name: a, limits: {orders_per_hour: 5}}]}", `unknown key "orders_per_hour" (known here: new_accounts_per_ip_per_hour, new_orders_per_account_per_hour)`},
		{"api: {client_cert_limits: {'mtls:x': {names: [corp..internal]}}}", `name limit "corp..internal" is not a DNS suffix`},
		{`profiles: [{name: "Team Server", default_lifetime: 24h, max_lifetime: 48h, key_types: [p256], template: "{}"}]`, `profile name: "Team Server" must be 1-63 lowercase letters, digits or dashes`},
		{"acme: {endpoints: [{name: team/a}]}", `acme.endpoints[0].name: "team/a" must be 1-63 lowercase letters, digits or dashes`},
	} {
		if err := os.WriteFile(cfg, append(append([]byte{}, base...), "\n"+tc.yaml+"\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, caBinary, "serve", "--data", dir).CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut || !strings.Contains(string(out), tc.want) {
			t.Errorf("serve with %q: %v (timed out: %v), want a refusal with %q:\n%s", tc.yaml, err, timedOut, tc.want, out)
		}
	}
}

// TestProfileOverrideFromReadme: the README's profile override changes
// tls-server's default lifetime and nothing else: the certificate is
// still a TLS server certificate, and the new maximum is enforced.
func TestProfileOverrideFromReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "`profiles: [{name: tls-server"
	i := strings.Index(string(readme), prefix)
	if i < 0 {
		t.Fatal("README has no profile override example")
	}
	line := string(readme[i+1:])
	line = line[:strings.Index(line, "`")]
	c := StartCA(t, Options{Configure: func(t testing.TB, dir string) { appendConfig(t, dir, "\n"+line+"\n") }})
	leaf := issueChain(t, c, goCSR(t, "override.localhost"))[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 720*time.Hour {
		t.Fatalf("lifetime %s, want the override's 720h", got)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("EKU %v: the built-in template should still apply", leaf.ExtKeyUsage)
	}
	body := fmt.Sprintf(`{"csr": %q, "lifetime": "2161h"}`, goCSR(t, "long.localhost"))
	if resp, b := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/json", "", strings.NewReader(body)); resp.StatusCode != 422 {
		t.Fatalf("a lifetime over the override's maximum: %s %s", resp.Status, b)
	}
}
