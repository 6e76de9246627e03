package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// These tests drive the Debian certbot and lego binaries against `ca serve`.
// The CA's challenge validator is pointed at a test DNS server
// (challengetest) that maps every test name to 127.0.0.1 and holds the
// dns-01 TXT records, and at the loopback ports where the clients' own
// http-01 and tls-alpn-01 servers listen.

// acmeEnv is a CA plus the network around it.
type acmeEnv struct {
	ca        *CA
	dns       *challengetest.DNSServer
	directory string
	httpPort  int // where the clients' http-01 servers listen
	tlsPort   int // where lego's tls-alpn-01 server listens
}

func startACMEEnv(t *testing.T) *acmeEnv {
	t.Helper()
	e := &acmeEnv{dns: challengetest.NewDNSServer(t), httpPort: challengetest.FreePort(t), tlsPort: challengetest.FreePort(t)}
	e.ca = StartCA(t, Options{Configure: func(t testing.TB, dir string) {
		configureValidation(t, dir, e.dns.Addr(), e.httpPort, e.tlsPort)
	}})
	e.directory = e.ca.HTTPSURL + "/acme/default/directory"
	resp, err := e.ca.Client.Get(e.directory)
	if err != nil {
		t.Fatalf("GET %s: %v", e.directory, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", e.directory, resp.Status)
	}
	return e
}

// configureValidation points the CA's challenge validator at the test DNS
// server and the clients' ports, and allows wildcards.
func configureValidation(t testing.TB, dir, resolver string, httpPort, tlsPort int) {
	path := filepath.Join(dir, "strongroom.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, fmt.Sprintf(`
policy:
  allow_wildcards: true
acme:
  validation:
    resolver: %q
    http_port: %d
    tls_port: %d
    timeout: 10s
  endpoints:
    - name: default
    - name: eab
      eab_required: true
`, resolver, httpPort, tlsPort)...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// names returns unique test names under example.com that resolve to
// 127.0.0.1 on the test DNS server.
func (e *acmeEnv) names(t *testing.T, labels ...string) []string {
	var out []string
	for _, l := range labels {
		n := fmt.Sprintf("%s.%s.example.com", l, strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
		e.dns.SetA(n, "127.0.0.1")
		out = append(out, n)
	}
	return out
}

// run executes a client, failing the test with its output on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// verifyChain checks a PEM chain file (leaf first) with openssl verify
// against the CA's root and that the leaf names exactly wantNames.
func (e *acmeEnv) verifyChain(t *testing.T, chainFile string, wantNames ...string) *x509.Certificate {
	t.Helper()
	requireTool(t, "openssl")
	data, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", chainFile, err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("%s holds %d certificates, want leaf and intermediate", chainFile, len(certs))
	}
	dir := t.TempDir()
	leaf, untrusted := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "untrusted.pem")
	var rest []byte
	for _, c := range certs[1:] {
		rest = append(rest, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	writeFile(t, leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw}))
	writeFile(t, untrusted, rest)
	out := run(t, nil, "openssl", "verify", "-CAfile", e.ca.Root, "-untrusted", untrusted, "-purpose", "sslserver", leaf)
	if !strings.Contains(out, leaf+": OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	got := slices.Clone(certs[0].DNSNames)
	slices.Sort(got)
	want := slices.Clone(wantNames)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("certificate names %v, want %v", got, want)
	}
	return certs[0]
}

// ocspStatus asks the CA's OCSP responder about cert with openssl.
func (e *acmeEnv) ocspStatus(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	leaf := filepath.Join(dir, "leaf.pem")
	writeFile(t, leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	out := run(t, nil, "openssl", "ocsp", "-issuer", e.ca.Intermediate, "-cert", leaf,
		"-url", e.ca.HTTPURL+"/ocsp", "-CAfile", e.ca.Root, "-no_nonce")
	switch {
	case strings.Contains(out, leaf+": revoked"):
		return "revoked"
	case strings.Contains(out, leaf+": good"):
		return "good"
	}
	t.Fatalf("openssl ocsp: %s", out)
	return ""
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCertbot(t *testing.T) {
	certbot := requireTool(t, "certbot")
	e := startACMEEnv(t)
	dir := t.TempDir()
	env := []string{"REQUESTS_CA_BUNDLE=" + e.ca.Root}
	args := func(extra ...string) []string {
		return append(extra, "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
			"--server", e.directory, "--config-dir", filepath.Join(dir, "config"),
			"--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"))
	}
	live := func(certName, file string) string { return filepath.Join(dir, "config", "live", certName, file) }

	t.Run("http-01 issue renew revoke", func(t *testing.T) {
		names := e.names(t, "www", "api")
		run(t, env, certbot, args("certonly", "--standalone", "--http-01-address", "127.0.0.1",
			"--http-01-port", fmt.Sprint(e.httpPort), "--cert-name", "http", "-d", names[0], "-d", names[1])...)
		first := e.verifyChain(t, live("http", "fullchain.pem"), names...)

		run(t, env, certbot, args("renew", "--cert-name", "http", "--force-renewal", "--no-random-sleep-on-renew")...)
		renewed := e.verifyChain(t, live("http", "fullchain.pem"), names...)
		if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatal("renewal returned the same certificate")
		}

		run(t, env, certbot, args("revoke", "--cert-path", live("http", "cert.pem"),
			"--reason", "keycompromise", "--no-delete-after-revoke")...)
		if st := e.ocspStatus(t, renewed); st != "revoked" {
			t.Fatalf("OCSP says %s after certbot revoke, want revoked", st)
		}
		if st := e.ocspStatus(t, first); st != "good" {
			t.Fatalf("OCSP says %s for the certificate that was not revoked", st)
		}
	})

	t.Run("dns-01 wildcard", func(t *testing.T) {
		hooks, err := e.dns.WriteHooks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		base := e.names(t, "zone")[0]
		run(t, env, certbot, args("certonly", "--manual", "--preferred-challenges", "dns",
			"--manual-auth-hook", hooks.CertbotAuth, "--manual-cleanup-hook", hooks.CertbotCleanup,
			"--cert-name", "wild", "-d", base, "-d", "*."+base)...)
		e.verifyChain(t, live("wild", "fullchain.pem"), base, "*."+base)
		if left := e.dns.TXT("_acme-challenge." + base); len(left) != 0 {
			t.Errorf("cleanup hook left TXT records %v", left)
		}
	})
}

func TestLego(t *testing.T) {
	lego := requireTool(t, "lego")
	e := startACMEEnv(t)
	path := t.TempDir()
	env := []string{"LEGO_CA_CERTIFICATES=" + e.ca.Root}
	global := func(names []string, extra ...string) []string {
		a := []string{"--server", e.directory, "--accept-tos", "--email", "e2e@example.com", "--path", path}
		for _, n := range names {
			a = append(a, "--domains", n)
		}
		return append(a, extra...)
	}
	bundle := func(name string) string {
		return filepath.Join(path, "certificates", strings.ReplaceAll(name, "*", "_")+".crt")
	}
	httpFlags := []string{"--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", e.httpPort)}

	t.Run("http-01 issue renew revoke", func(t *testing.T) {
		names := e.names(t, "www")
		run(t, env, lego, append(global(names, httpFlags...), "run")...)
		first := e.verifyChain(t, bundle(names[0]), names...)

		run(t, env, lego, append(global(names, httpFlags...), "renew", "--days", "36500", "--no-random-sleep")...)
		renewed := e.verifyChain(t, bundle(names[0]), names...)
		if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Fatal("renewal returned the same certificate")
		}

		run(t, env, lego, append(global(names), "revoke", "--reason", "1", "--keep")...)
		if st := e.ocspStatus(t, renewed); st != "revoked" {
			t.Fatalf("OCSP says %s after lego revoke, want revoked", st)
		}
	})

	t.Run("tls-alpn-01", func(t *testing.T) {
		names := e.names(t, "alpn")
		run(t, env, lego, append(global(names, "--tls", "--tls.port", fmt.Sprintf("127.0.0.1:%d", e.tlsPort)), "run")...)
		e.verifyChain(t, bundle(names[0]), names...)
	})

	t.Run("dns-01 wildcard via httpreq", func(t *testing.T) {
		base := e.names(t, "zone")[0]
		names := []string{base, "*." + base}
		denv := slices.Concat(env, []string{"HTTPREQ_ENDPOINT=" + e.dns.APIURL()})
		run(t, denv, lego, append(global(names, "--dns", "httpreq", "--dns.resolvers", e.dns.Addr(),
			"--dns.disable-cp"), "run")...)
		e.verifyChain(t, bundle(base), names...)
		if left := e.dns.TXT("_acme-challenge." + base); len(left) != 0 {
			t.Errorf("lego cleanup left TXT records %v", left)
		}
	})

	t.Run("dns-01 via exec hook", func(t *testing.T) {
		hooks, err := e.dns.WriteHooks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		names := e.names(t, "exec")
		denv := slices.Concat(env, []string{"EXEC_PATH=" + hooks.LegoExec})
		run(t, denv, lego, append(global(names, "--dns", "exec", "--dns.resolvers", e.dns.Addr(),
			"--dns.disable-cp"), "run")...)
		e.verifyChain(t, bundle(names[0]), names...)
	})
	// lego 4.9's CLI has no account key rollover command; keyChange is
	// covered by package acme's in-process lego v5 tests.
}
