package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// These tests drive two more Debian ACME clients, dehydrated and uacme,
// through the same CA and network as certbot and lego (acme_clients_test.go).
// Neither answers http-01 itself: both write the key authorization into a
// web server's webroot, which serveWebroot plays.

// serveWebroot serves a temporary webroot's /.well-known/acme-challenge/
// on the clients' http-01 port until the test ends, and returns the
// challenge directory the client writes the token files into.
func (e *acmeEnv) serveWebroot(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".well-known", "acme-challenge")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.httpPort))
	if err != nil {
		t.Fatalf("listening on the http-01 port: %v", err)
	}
	srv := &http.Server{
		Handler:           http.StripPrefix("/.well-known/acme-challenge/", http.FileServer(http.Dir(dir))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return dir
}

// requireRevoked checks with `ca cert show` that the CA recorded cert as
// revoked for reason.
func (e *acmeEnv) requireRevoked(t *testing.T, cert *x509.Certificate, reason core.RevocationReason) {
	t.Helper()
	serial := string(core.SerialFromBig(cert.SerialNumber))
	out := e.ca.MustCLI(t, context.Background(), "cert", "show", serial)
	if !strings.Contains(out, "status:     revoked") || !strings.Contains(out, "("+reason.String()+")") {
		t.Fatalf("ca cert show %s after the client revoked it, want revoked (%s):\n%s", serial, reason, out)
	}
}

// requireValid checks with `ca cert show` that cert is not revoked.
func (e *acmeEnv) requireValid(t *testing.T, cert *x509.Certificate) {
	t.Helper()
	serial := string(core.SerialFromBig(cert.SerialNumber))
	if out := e.ca.MustCLI(t, context.Background(), "cert", "show", serial); !strings.Contains(out, "status:     valid") {
		t.Fatalf("ca cert show %s, a certificate nobody revoked:\n%s", serial, out)
	}
}

func TestDehydrated(t *testing.T) {
	dehydrated := requireTool(t, "dehydrated")
	e := startACMEEnv(t)
	wellknown := e.serveWebroot(t)
	base := t.TempDir()
	config := filepath.Join(base, "config")
	writeFile(t, config, []byte(fmt.Sprintf(`CA=%q
BASEDIR=%q
WELLKNOWN=%q
CHALLENGETYPE="http-01"
CONTACT_EMAIL="e2e@example.com"
`, e.directory, base, wellknown)))
	// dehydrated calls the curl binary, which reads CURL_CA_BUNDLE.
	env := []string{"CURL_CA_BUNDLE=" + e.ca.Root}
	dh := func(args ...string) string {
		t.Helper()
		return run(t, env, dehydrated, append([]string{"--config", config}, args...)...)
	}

	dh("--register", "--accept-terms")
	names := e.names(t, "www", "api")
	cert := func(file string) string { return filepath.Join(base, "certs", names[0], file) }
	dh("--cron", "--domain", names[0], "--domain", names[1])
	first := e.verifyChain(t, cert("fullchain.pem"), names...)

	dh("--cron", "--force", "--domain", names[0], "--domain", names[1])
	renewed := e.verifyChain(t, cert("fullchain.pem"), names...)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal returned the same certificate")
	}
	if left, _ := os.ReadDir(wellknown); len(left) != 0 {
		t.Errorf("dehydrated left challenge files %v", left)
	}

	// dehydrated --revoke signs with the account key and sends no reason.
	dh("--revoke", cert("cert.pem"))
	e.requireRevoked(t, renewed, core.ReasonUnspecified)
	e.requireValid(t, first)
}

// uacmeHook is a uacme -h program for http-01: it writes the key
// authorization into the webroot ($WEBROOT) and removes it afterwards, and
// declines other challenge types (uacme then tries the next one offered).
const uacmeHook = `#!/bin/sh
# method type ident token auth
[ "$2" = http-01 ] || exit 1
case "$1" in
begin) printf '%s' "$5" > "$WEBROOT/$4" ;;
done|failed) rm -f "$WEBROOT/$4" ;;
*) exit 1 ;;
esac
`

func TestUACME(t *testing.T) {
	uacme := requireTool(t, "uacme")
	unshare := requireTool(t, "unshare")
	// uacme 1.7.4 has no way to name the CAs it trusts (1.7.6 reads
	// UACME_CAINFO): its libcurl reads the system bundle only. So it runs
	// in a mount namespace of its own where the CA's root is bind-mounted
	// over that bundle; the machine's trust store is left alone.
	const bundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(bundle); err != nil {
		unavailable(t, "uacme's libcurl reads %s: %v (make deps installs ca-certificates)", bundle, err)
	}
	if out, err := exec.Command(unshare, "-rm", "true").CombinedOutput(); err != nil {
		unavailable(t, "cannot make a mount namespace for uacme's trust store: %v: %s", err, out)
	}
	e := startACMEEnv(t)
	webroot := e.serveWebroot(t)
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(hook, []byte(uacmeHook), 0o755); err != nil {
		t.Fatal(err)
	}
	confdir := filepath.Join(dir, "uacme")
	env := []string{"WEBROOT=" + webroot}
	ua := func(args ...string) string {
		t.Helper()
		return run(t, env, unshare, append([]string{"-rm", "sh", "-c", `mount --bind "$0" "$1" && shift && exec "$@"`,
			e.ca.Root, bundle, uacme, "--verbose", "--acme-url", e.directory, "--confdir", confdir}, args...)...)
	}

	ua("--yes", "new", "e2e@example.com")
	names := e.names(t, "www", "api")
	certFile := filepath.Join(confdir, names[0], "cert.pem")
	ua("--hook", hook, "issue", names[0], names[1])
	first := e.verifyChain(t, certFile, names...)

	// uacme keeps the certificate it replaces as cert-TIMESTAMP.pem.
	ua("--hook", hook, "--force", "issue", names[0], names[1])
	renewed := e.verifyChain(t, certFile, names...)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal returned the same certificate")
	}
	if left, _ := os.ReadDir(webroot); len(left) != 0 {
		t.Errorf("the hook left challenge files %v", left)
	}
	kept, _ := filepath.Glob(filepath.Join(confdir, names[0], "cert-*.pem"))
	if len(kept) != 1 {
		t.Fatalf("uacme kept %v, want the first certificate", kept)
	}
	if c := e.verifyChain(t, kept[0], names...); !c.Equal(first) {
		t.Fatalf("%s is not the first certificate", kept[0])
	}

	// Signed with the account key; --reason 1 is keyCompromise.
	ua("--reason", "1", "revoke", certFile)
	e.requireRevoked(t, renewed, core.ReasonKeyCompromise)
	e.requireValid(t, first)

	// Signed with the certificate's own key (RFC 8555 §7.6, a JWS with a
	// jwk): uacme reuses the key on renewal, so it is the first's too.
	ua("--reason", "4", "revoke", kept[0], filepath.Join(confdir, "private", names[0], "key.pem"))
	e.requireRevoked(t, first, core.ReasonSuperseded)
}
