package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// These tests drive two more Debian ACME clients of different kinds: Caddy,
// a web server that gets its own certificates (and staples OCSP), and
// acme-tiny, a minimal Python client (RSA account keys, RS256).

// TestCaddy: Caddy 2 with Strongroom as its ACME CA obtains a certificate
// for a site at start, solving http-01 or tls-alpn-01 on its own ports,
// serves it with the chain, and staples the CA's OCSP answer.
func TestCaddy(t *testing.T) {
	caddy := requireTool(t, "caddy")
	e := startACMEEnv(t)
	name := e.names(t, "site")[0]
	dir := t.TempDir()
	caddyfile := filepath.Join(dir, "Caddyfile")
	writeFile(t, caddyfile, []byte(fmt.Sprintf(`{
	admin off
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	storage file_system %s
	skip_install_trust
	email e2e@example.com
}

%s {
	tls {
		issuer acme {
			dir %s
			trusted_roots %s
		}
	}
	respond "hello from caddy"
}
`, e.httpPort, e.tlsPort, filepath.Join(dir, "storage"), name, e.directory, e.ca.Root)))

	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("caddy:\n%s", out.String())
		}
	})

	roots := x509.NewCertPool()
	root, err := os.ReadFile(e.ca.Root)
	if err != nil || !roots.AppendCertsFromPEM(root) {
		t.Fatalf("reading the root: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", e.tlsPort)
	dial := func() (*tls.ConnectionState, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	// Caddy gets the certificate in the background after it starts; until
	// then its handshakes fail.
	var st *tls.ConnectionState
	deadline := time.Now().Add(90 * time.Second)
	for st, err = dial(); err != nil; st, err = dial() {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake with a certificate from the CA within 90 s: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	leaf := st.PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{name}) || len(st.PeerCertificates) < 2 {
		t.Fatalf("Caddy serves %v with %d certificates, want [%s] with its chain", leaf.DNSNames, len(st.PeerCertificates), name)
	}
	e.requireValid(t, leaf)

	// The site answers over that certificate.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	resp, err := client.Get("https://" + name + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("hello from caddy")) {
		t.Fatalf("GET https://%s/: %s %q", name, resp.Status, body)
	}

	// Caddy fetched the certificate's status from the OCSP URL in its AIA
	// and staples it: a response the CA signed, saying good.
	deadline = time.Now().Add(30 * time.Second)
	for len(st.OCSPResponse) == 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if st, err = dial(); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.OCSPResponse) == 0 {
		t.Fatal("Caddy staples no OCSP response")
	}
	r, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf, st.PeerCertificates[1])
	if err != nil || r.Status != ocsp.Good || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("stapled OCSP response: %v, %+v", err, r)
	}
}

// TestACMETiny: acme-tiny (RSA account key, RS256 JWS) gets a certificate
// for two names through http-01, served from a webroot it writes into.
func TestACMETiny(t *testing.T) {
	acmeTiny := requireTool(t, "acme-tiny")
	requireTool(t, "openssl")
	e := startACMEEnv(t)
	webroot := e.serveWebroot(t)
	dir := t.TempDir()
	names := e.names(t, "www", "api")
	account, key, csr := filepath.Join(dir, "account.key"), filepath.Join(dir, "domain.key"), filepath.Join(dir, "domain.csr")
	run(t, nil, "openssl", "genrsa", "-out", account, "2048")
	run(t, nil, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN="+names[0], "-addext", "subjectAltName=DNS:"+strings.Join(names, ",DNS:"))
	// acme-tiny checks each token over http://NAME/ itself first: the
	// test names resolve to the loopback only on the CA's resolver, so
	// that check is off. Python's ssl reads SSL_CERT_FILE.
	chain := run(t, []string{"SSL_CERT_FILE=" + e.ca.Root}, acmeTiny, "--account-key", account, "--csr", csr,
		"--acme-dir", webroot, "--directory-url", e.directory, "--disable-check", "--contact", "mailto:e2e@example.com")
	chainFile := filepath.Join(dir, "chain.pem")
	writeFile(t, chainFile, []byte(chain)) // its log lines around the PEM are skipped
	e.verifyChain(t, chainFile, names...)
	if left, _ := os.ReadDir(webroot); len(left) != 0 {
		t.Errorf("acme-tiny left challenge files %v", left)
	}
}
