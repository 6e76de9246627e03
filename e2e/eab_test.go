package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExternalAccountBinding drives the "eab" endpoint (eab_required) with
// the real lego and certbot: without a binding both are refused; with a key
// from `ca acme eab create` (its HMAC key lives in the HSM) both get a
// certificate; after `ca acme eab revoke` the key binds no new account; a
// key made with --names orders only inside them.
func TestExternalAccountBinding(t *testing.T) {
	lego := requireTool(t, "lego")
	certbot := requireTool(t, "certbot")
	e := startACMEEnv(t)
	directory := e.ca.HTTPSURL + "/acme/eab/directory"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	createEAB := func(extra ...string) (kid, hmac string) {
		out, err := e.ca.CLI(ctx, append([]string{"acme", "eab", "create", "--endpoint", "eab"}, extra...)...)
		if err != nil {
			t.Fatalf("ca acme eab create: %v\n%s", err, out)
		}
		kid = regexp.MustCompile(`(?m)^kid:\s+(\S+)`).FindStringSubmatch(out)[1]
		hmac = regexp.MustCompile(`(?m)^hmac key:\s+(\S+)`).FindStringSubmatch(out)[1]
		return kid, hmac
	}
	env := []string{"LEGO_CA_CERTIFICATES=" + e.ca.Root}
	legoArgs := func(path string, names []string, extra ...string) []string {
		a := []string{"--server", directory, "--accept-tos", "--email", "eab@example.com", "--path", path,
			"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", e.httpPort)}
		for _, n := range names {
			a = append(a, "--domains", n)
		}
		return append(append(a, extra...), "run")
	}

	names := e.names(t, "lego")
	cmd := exec.Command(lego, legoArgs(t.TempDir(), names)...)
	cmd.Env = append(cmd.Environ(), env...)
	// lego reads meta.externalAccountRequired from the directory and
	// refuses before it asks; the server's own refusal is covered in package
	// acme's tests.
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "External Account Binding") {
		t.Fatalf("lego without EAB: %v\n%s", err, out)
	}
	kid, hmac := createEAB()
	path := t.TempDir()
	run(t, env, lego, legoArgs(path, names, "--eab", "--kid", kid, "--hmac", hmac)...)
	e.verifyChain(t, filepath.Join(path, "certificates", names[0]+".crt"), names...)

	kid2, hmac2 := createEAB()
	dir := t.TempDir()
	cbNames := e.names(t, "certbot")
	certbotArgs := []string{"certonly", "--standalone", "--http-01-port", fmt.Sprint(e.httpPort),
		"--http-01-address", "127.0.0.1", "--server", directory, "--agree-tos", "--register-unsafely-without-email",
		"--non-interactive", "--config-dir", dir, "--work-dir", dir, "--logs-dir", dir, "-d", cbNames[0],
		"--eab-kid", kid2, "--eab-hmac-key", hmac2}
	run(t, []string{"REQUESTS_CA_BUNDLE=" + e.ca.Root}, certbot, certbotArgs...)
	e.verifyChain(t, filepath.Join(dir, "live", cbNames[0], "fullchain.pem"), cbNames...)

	kid3, hmac3 := createEAB()
	if out, err := e.ca.CLI(ctx, "acme", "eab", "revoke", kid3, "--endpoint", "eab"); err != nil {
		t.Fatalf("ca acme eab revoke: %v\n%s", err, out)
	}
	cmd = exec.Command(lego, legoArgs(t.TempDir(), e.names(t, "revoked"), "--eab", "--kid", kid3, "--hmac", hmac3)...)
	cmd.Env = append(cmd.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("lego with a revoked EAB key succeeded:\n%s", out)
	}

	// A key made with --names binds an account that orders inside them
	// only: lego gets rejectedIdentifier for the rest.
	team := e.names(t, "www.team", "other")
	suffix := strings.TrimPrefix(team[0], "www.")
	kid4, hmac4 := createEAB("--names", suffix)
	path = t.TempDir()
	cmd = exec.Command(lego, legoArgs(path, team, "--eab", "--kid", kid4, "--hmac", hmac4)...)
	cmd.Env = append(cmd.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "rejectedIdentifier") || !strings.Contains(string(out), team[1]) {
		t.Fatalf("lego outside the EAB key's names: %v\n%s", err, out)
	}
	run(t, env, lego, legoArgs(path, team[:1], "--eab", "--kid", kid4, "--hmac", hmac4)...)
	e.verifyChain(t, filepath.Join(path, "certificates", team[0]+".crt"), team[0])

	// ca acme eab list: ids, bound accounts, names, revocations; no keys.
	out, err := e.ca.CLI(ctx, "acme", "eab", "list", "--endpoint", "eab")
	if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(kid4)+`\s+\S+\s+`+regexp.QuoteMeta(suffix)+`\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(kid3)+`\s.*Z\s*$`).MatchString(out) || strings.Contains(out, hmac4) {
		t.Fatalf("ca acme eab list: %v\n%s", err, out)
	}
}
