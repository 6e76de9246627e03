package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
)

// keyCSR is a PEM CSR for name signed by key.
func keyCSR(t *testing.T, key *ecdsa.PrivateKey, name string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestBlockedKeys: a key reported compromised is blocked for good. `ca cert
// block-key` (a key found somewhere, no certificate to revoke) revokes its
// certificates at once, OCSP says so, and issuance for it is refused; a
// keyCompromise revocation with no server running revokes the key's other
// certificates, served after the start; `ca cert blocked-keys` lists both.
func TestBlockedKeys(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := func(args ...string) string { t.Helper(); return c.MustCLI(t, ctx, args...) }
	leaked, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a := issueChain(t, c, keyCSR(t, leaked, "a.localhost"))
	b := issueChain(t, c, keyCSR(t, leaked, "b.localhost"))
	issuer := a[1]
	reqA, _ := ocsp.CreateRequest(a[0], issuer, nil)
	if r := ocspGet(t, c, reqA, false, a[0], issuer); r.Status != ocsp.Good { // now cached
		t.Fatalf("OCSP before: %d", r.Status)
	}
	dir := t.TempDir()
	pubDER, _ := x509.MarshalPKIXPublicKey(leaked.Public())
	pubFile := filepath.Join(dir, "leaked.pub")
	os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
	out := cli("cert", "block-key", pubFile, "--comment", "found in a public repository")
	if !strings.Contains(out, "blocked key") || !strings.Contains(out, "2 certificate(s)") || !strings.Contains(out, "through the running server") {
		t.Fatalf("ca cert block-key:\n%s", out)
	}
	for _, leaf := range []*x509.Certificate{a[0], b[0]} {
		req, _ := ocsp.CreateRequest(leaf, issuer, nil)
		if r := ocspGet(t, c, req, false, leaf, issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
			t.Fatalf("OCSP right after block-key: status %d reason %d", r.Status, r.RevocationReason)
		}
	}
	resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(keyCSR(t, leaked, "c.localhost")))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "blocked") {
		t.Fatalf("issuing for a blocked key: %s\n%s", resp.Status, body)
	}
	if out := cli("cert", "block-key", pubFile); !strings.Contains(out, "blocked already") || !strings.Contains(out, "0 certificate(s)") {
		t.Fatalf("ca cert block-key again:\n%s", out)
	}
	// A leaked private key is how a compromise usually turns up: its
	// public half names the same key (PEM or DER).
	keyDER, _ := x509.MarshalECPrivateKey(leaked)
	privFile, derFile := filepath.Join(dir, "leaked.key"), filepath.Join(dir, "leaked.der")
	os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(derFile, keyDER, 0o600)
	for _, f := range []string{privFile, derFile} {
		if out := cli("cert", "block-key", f); !strings.Contains(out, "blocked already") {
			t.Fatalf("ca cert block-key %s (the same key):\n%s", f, out)
		}
	}
	// Blocking a CA's key does not revoke the CA certificate (that is
	// `ca cert revoke --ca`): issuance goes on, and the operator is told.
	if out := cli("cert", "block-key", c.Intermediate); !strings.Contains(out, "stays valid") || !strings.Contains(out, "--ca") {
		t.Fatalf("ca cert block-key of the intermediate's key:\n%s", out)
	}
	issueChain(t, c, goCSR(t, "after-ca-block.localhost"))
	for _, bad := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "no such file"},
		{c.Dir + "/strongroom.yaml", "neither PEM nor DER"},
	} {
		if out, err := c.CLI(ctx, "cert", "block-key", bad.file); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("ca cert block-key %s: %v, want %q:\n%s", bad.file, err, bad.want, out)
		}
	}

	// keyCompromise with no server running: the key's other certificate
	// is revoked too, and served revoked after the start.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	reported := issueChain(t, c, keyCSR(t, other, "d.localhost"))
	sibling := issueChain(t, c, keyCSR(t, other, "e.localhost"))
	c.Stop()
	out = cli("cert", "revoke", string(core.SerialFromBig(reported[0].SerialNumber)), "--reason", "keyCompromise")
	if !strings.Contains(out, "no server runs") || !strings.Contains(out, "its key is blocked, and 1 other certificate(s) with it were revoked") {
		t.Fatalf("offline keyCompromise revocation:\n%s", out)
	}
	c.start()
	c.WaitReady()
	req, _ := ocsp.CreateRequest(sibling[0], issuer, nil)
	if r := ocspGet(t, c, req, false, sibling[0], issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("OCSP of the other certificate of a key revoked offline: status %d reason %d", r.Status, r.RevocationReason)
	}
	out = cli("cert", "blocked-keys")
	if !strings.Contains(out, "found in a public repository") || !strings.Contains(out, string(core.SerialFromBig(reported[0].SerialNumber))) {
		t.Fatalf("ca cert blocked-keys:\n%s", out)
	}

	// An operator may undo a mistaken block: the key is certified again,
	// what was revoked because of it stays revoked.
	hash := fmt.Sprintf("%x", sha256.Sum256(pubDER))
	if out := cli("cert", "unblock-key", hash); !strings.Contains(out, "unblocked key "+hash) {
		t.Fatalf("ca cert unblock-key:\n%s", out)
	}
	resp, body = apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", bytes.NewReader(keyCSR(t, leaked, "f.localhost")))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("issuing for an unblocked key: %s\n%s", resp.Status, body)
	}
	if out := cli("cert", "show", string(core.SerialFromBig(a[0].SerialNumber))); !strings.Contains(out, "keyCompromise") {
		t.Fatalf("a certificate revoked because of the block after unblocking:\n%s", out)
	}
	for _, bad := range []struct{ arg, want string }{{hash, "is not blocked"}, {"xyz", "64 hex digits"}} {
		if out, err := c.CLI(ctx, "cert", "unblock-key", bad.arg); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("ca cert unblock-key %s: %v, want %q:\n%s", bad.arg, err, bad.want, out)
		}
	}
}
