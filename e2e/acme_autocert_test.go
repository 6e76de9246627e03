package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// TestAutocert: a Go server using golang.org/x/crypto/acme/autocert, the
// ACME client most Go programs embed, with Strongroom as its CA. autocert
// gets a certificate during the first TLS handshake for a name, solving
// tls-alpn-01 on the same listener; it asks for an ECDSA certificate for
// clients that support ECDSA and an RSA one for clients that do not.
func TestAutocert(t *testing.T) {
	e := startACMEEnv(t)
	name := e.names(t, "gosite")[0]
	roots := x509.NewCertPool()
	root, err := os.ReadFile(e.ca.Root)
	if err != nil || !roots.AppendCertsFromPEM(root) {
		t.Fatalf("reading the root: %v", err)
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(t.TempDir()),
		HostPolicy: autocert.HostWhitelist(name),
		Email:      "e2e@example.com",
		Client: &acme.Client{DirectoryURL: e.directory, HTTPClient: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		}},
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.tlsPort))
	ln, err := tls.Listen("tcp", addr, m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from autocert")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// handshake dials the server as name; the first handshake for each
	// key type waits for the whole ACME exchange.
	handshake := func(cfg *tls.Config) *tls.ConnectionState {
		t.Helper()
		cfg.ServerName, cfg.RootCAs = name, roots
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("TLS handshake with the autocert server as %s: %v", name, err)
		}
		defer c.Close()
		st := c.(*tls.Conn).ConnectionState()
		return &st
	}
	check := func(st *tls.ConnectionState) *x509.Certificate {
		t.Helper()
		leaf := st.PeerCertificates[0]
		if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != name || len(st.PeerCertificates) < 2 {
			t.Fatalf("autocert serves %v with %d certificates, want [%s] with its chain", leaf.DNSNames, len(st.PeerCertificates), name)
		}
		e.requireValid(t, leaf)
		return leaf
	}

	ec := check(handshake(&tls.Config{}))
	if _, ok := ec.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("a client that supports ECDSA got a %T certificate", ec.PublicKey)
	}
	// A TLS 1.2 client offering only RSA suites makes autocert order a
	// second certificate, for an RSA key.
	rsaOnly := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	rc := check(handshake(rsaOnly))
	if _, ok := rc.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("an RSA-only client got a %T certificate", rc.PublicKey)
	}
	if rc.SerialNumber.Cmp(ec.SerialNumber) == 0 {
		t.Error("the RSA-only client got the ECDSA certificate")
	}
	// Later handshakes are served from autocert's cache: same certificate.
	if again := check(handshake(&tls.Config{})); again.SerialNumber.Cmp(ec.SerialNumber) != 0 {
		t.Errorf("second handshake got serial %x, want the cached %x", again.SerialNumber, ec.SerialNumber)
	}
}
