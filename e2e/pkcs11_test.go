package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11/softhsmtest"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestCAKeysOnPKCS11 runs a CA whose root and intermediate keys live on a
// real PKCS#11 token (SoftHSMv2): `ca init --ca-keys pkcs11` generates them
// there, `ca serve` signs with them — certificates, the OCSP responder's
// certificate, CRLs — and finds them again after a restart; the embedded
// module holds neither; a second ceremony on the same token is refused
// before it writes anything; a wrong PIN stops serve with a clear error
// that does not show it.
func TestCAKeysOnPKCS11(t *testing.T) {
	requireTool(t, "openssl")
	st := softHSMToken(t, "strongroom-ca")
	pinEnv := "STRONGROOM_PKCS11_PIN=" + st.PIN
	c := StartCA(t, Options{InitArgs: []string{"--ca-keys", "pkcs11", "--pkcs11-module", st.Module, "--pkcs11-token", st.Label},
		Env: []string{pinEnv}})

	issue := func(name string) string {
		t.Helper()
		resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "application/pem-certificate-chain",
			strings.NewReader(string(goCSR(t, name))))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("issue %s: %s\n%s", name, resp.Status, body)
		}
		f := filepath.Join(t.TempDir(), "chain.pem")
		if err := os.WriteFile(f, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := run(t, nil, "openssl", "verify", "-CAfile", c.Root, "-untrusted", c.Intermediate, f); !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify: %s", out)
		}
		return f
	}
	leaf := issue("app.localhost")

	// The OCSP responder's certificate is signed on the token too; its
	// answer verifies up to the root.
	out := run(t, nil, "openssl", "ocsp", "-issuer", c.Intermediate, "-cert", leaf, "-url", c.HTTPURL+"/ocsp",
		"-CAfile", c.Root, "-verify_other", c.Intermediate)
	if !strings.Contains(out, ": good") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("openssl ocsp: %s", out)
	}
	// And so is the CRL (fetchCRL checks its signature).
	inter := readPEMCert(t, c.Intermediate)
	fetchCRL(t, c, "intermediate.crl", inter)

	// The keys are the token's: the certificates carry its public keys,
	// and the embedded module has no key with those labels.
	tok, err := pkcs11.Open(context.Background(), st.Options())
	if err != nil {
		t.Fatal(err)
	}
	for label, cert := range map[string]*x509.Certificate{"root": readPEMCert(t, c.Root), "intermediate": inter} {
		s, err := tok.Signer(label)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
			t.Fatalf("%s certificate's key is not the token's %q", label, label)
		}
	}
	tok.Close()
	keys, err := c.CLI(context.Background(), "hsm", "keys", "list")
	if err != nil {
		t.Fatalf("ca hsm keys list: %v\n%s", err, keys)
	}
	for _, line := range strings.Split(keys, "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[1] == "root" || f[1] == "intermediate") {
			t.Fatalf("the embedded HSM holds a CA key:\n%s", keys)
		}
	}

	// A second ceremony on the same token stops before writing anything:
	// the labels are taken.
	again := t.TempDir()
	cmd0 := exec.Command(caBinary, "init", "--data", again, "--ca-keys", "pkcs11", "--pkcs11-module", st.Module, "--pkcs11-token", st.Label)
	cmd0.Env = append(os.Environ(), pinEnv)
	if msg, err := cmd0.CombinedOutput(); err == nil || !strings.Contains(string(msg), `already holds a key labelled "root"`) {
		t.Fatalf("second init on the same token: %v\n%s", err, msg)
	}
	if entries, _ := os.ReadDir(again); len(entries) != 0 {
		t.Fatalf("the refused init left %d files behind", len(entries))
	}

	// A restart finds the keys again by label.
	c.Restart()
	issue("again.localhost")

	// Rotation: `ca issuer add` makes the new intermediate's key on the
	// token too, and after a restart the CA issues from it.
	if out, err := c.CLI(context.Background(), "issuer", "add", "intermediate-2", "--default"); err != nil {
		t.Fatalf("ca issuer add: %v\n%s", err, out)
	}
	c.Restart()
	inter2 := readPEMCert(t, filepath.Join(c.Dir, "intermediate-2.pem"))
	if chain := issueChain(t, c, goCSR(t, "rotated.localhost")); !bytes.Equal(chain[0].RawIssuer, inter2.RawSubject) {
		t.Fatalf("issued by %s after rotation, want %s", chain[0].Issuer, inter2.Subject)
	}
	if tok, err = pkcs11.Open(context.Background(), st.Options()); err != nil {
		t.Fatal(err)
	}
	s2, err := tok.Signer("intermediate-2")
	if err != nil || !s2.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(inter2.PublicKey) {
		t.Fatalf("intermediate-2's key is not on the token: %v", err)
	}
	tok.Close()

	// A wrong PIN: serve stops at start and says why, without the PIN.
	c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caBinary, "serve", "--data", c.Dir)
	cmd.Env = append(os.Environ(), "STRONGROOM_PKCS11_PIN=wrong-pin-3141")
	msg, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve with a wrong PKCS#11 PIN: %v\n%s", err, msg)
	}
	if !strings.Contains(string(msg), "CKR_PIN_INCORRECT") || strings.Contains(string(msg), "wrong-pin-3141") {
		t.Fatalf("serve with a wrong PKCS#11 PIN said:\n%s", msg)
	}
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestAutoUnsealPKCS11: with `ca init --unseal pkcs11` an AES key on the
// token seals the embedded HSM's KEK; ca serve unseals at start with no
// operator and no key file on disk, again after a restart, and issues.
func TestAutoUnsealPKCS11(t *testing.T) {
	st := softHSMToken(t, "strongroom-kek")
	c := StartCA(t, Options{InitArgs: []string{"--unseal", "pkcs11", "--pkcs11-module", st.Module, "--pkcs11-token", st.Label},
		Env: []string{"STRONGROOM_PKCS11_PIN=" + st.PIN}})
	if _, err := os.Stat(filepath.Join(c.Dir, "unseal.key")); !os.IsNotExist(err) {
		t.Fatalf("an unseal key file was written: %v", err)
	}
	// StartCA waited for /readyz, which answers 200 only once the HSM is
	// unsealed: here by the token alone.
	if cfg, _ := os.ReadFile(filepath.Join(c.Dir, "strongroom.yaml")); !strings.Contains(string(cfg), "unseal: pkcs11") {
		t.Fatalf("config:\n%s", cfg)
	}
	issue := func(name string) {
		t.Helper()
		resp, body := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "", strings.NewReader(string(goCSR(t, name))))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("issue %s: %s\n%s", name, resp.Status, body)
		}
	}
	issue("auto.localhost")
	c.Restart()
	issue("again.localhost")
}

// TestPKCS11TokenOutage: a running `ca serve` with its CA keys on a token
// that is removed (SoftHSM's token directory moved away) answers issuance
// 503 with Retry-After, says "degraded" on /readyz; when the token is put
// back it issues again without a restart (a review found it answering 503
// until restarted, its handles gone) and reports ready.
func TestPKCS11TokenOutage(t *testing.T) {
	st := softHSMToken(t, "strongroom-outage")
	c := StartCA(t, Options{InitArgs: []string{"--ca-keys", "pkcs11", "--pkcs11-module", st.Module, "--pkcs11-token", st.Label},
		Env: []string{"STRONGROOM_PKCS11_PIN=" + st.PIN}})
	issue := func() *http.Response {
		t.Helper()
		resp, _ := apiCall(t, c, "POST", "/certificates", c.AdminKey(), "application/pkcs10", "application/pem-certificate-chain",
			strings.NewReader(string(goCSR(t, "outage.localhost"))))
		return resp
	}
	readyz := func() string {
		t.Helper()
		resp, err := c.Client.Get(c.HTTPSURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&body)
		return body.Status
	}
	if r := issue(); r.StatusCode != http.StatusCreated {
		t.Fatalf("issuing with the token: %s", r.Status)
	}
	// The banner says where the CA keys are.
	if !strings.Contains(c.Output(), `CA keys:          on PKCS#11 token "strongroom-outage" of `+st.Module+` (labels root, intermediate)`) {
		t.Fatalf("the banner does not name the token:\n%s", c.Output())
	}
	tokens := filepath.Join(filepath.Dir(st.Conf), "tokens")
	if err := os.Rename(tokens, tokens+".away"); err != nil {
		t.Fatal(err)
	}
	// Before anything signs: a review saw /readyz say ready for as long
	// as nothing tried the token.
	if st := readyz(); st != "degraded" {
		t.Fatalf("/readyz with the token gone, before any signature: %q, want degraded", st)
	}
	r := issue()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("issuing with the token gone: %s (Retry-After %q)", r.Status, r.Header.Get("Retry-After"))
	}
	if st := readyz(); st != "degraded" {
		t.Fatalf("/readyz with the token gone: %q, want degraded", st)
	}
	if err := os.Rename(tokens+".away", tokens); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "issuance with the token back", func() bool { return issue().StatusCode == http.StatusCreated })
	if st := readyz(); st != "ready" {
		t.Fatalf("/readyz with the token back: %q", st)
	}
	// An HSM backup says it does not hold the CA keys, and where they are.
	out := c.MustCLI(t, context.Background(), "hsm", "backup", "--out", filepath.Join(t.TempDir(), "b.srbk"))
	if !strings.Contains(out, `the CA keys are not in this backup: they are on PKCS#11 token "strongroom-outage" (labels root, intermediate)`) {
		t.Fatalf("ca hsm backup with the CA keys on a token:\n%s", out)
	}
	// `ca hsm status` checks the CA keys on the token (a review deleted
	// them there and status said all was well): through the running
	// server, which costs the token no login, else by its own login.
	status := func(want string, ok bool) {
		t.Helper()
		out, err := c.CLI(context.Background(), "hsm", "status")
		if (err == nil) != ok || !strings.Contains(out, want) {
			t.Fatalf("ca hsm status: %v, want %q (exit 0: %v)\n%s", err, want, ok, out)
		}
	}
	status("CA keys on the PKCS#11 token: the running server finds and signs with every issuer's key", true)
	for _, label := range []string{"intermediate", "root"} {
		if out, err := exec.Command("pkcs11-tool", "--module", st.Module, "--token-label", st.Label, "--login", "--pin", st.PIN,
			"--delete-object", "--type", "privkey", "--label", label).CombinedOutput(); err != nil {
			t.Fatalf("pkcs11-tool --delete-object: %v\n%s", err, out)
		}
	}
	// Both keys are named, not only the first (found by a review).
	status("CA keys on the PKCS#11 token: FAILING (the running server): the key of issuer root cannot sign", false)
	status("the key of issuer intermediate cannot sign", false)
	c.Stop()
	status("CA keys on the PKCS#11 token: FAILING: issuer root:", false)
	status("; issuer intermediate:", false)
}

// TestTwoCAsShareToken: two CAs keep their keys (CA keys and the KEK's
// wrapping key) on one token, told apart by `ca init --pkcs11-label-prefix`:
// both serve at once, each signs with its own keys, `ca issuer add` makes
// the new key under the prefix, and each finds its keys again after a
// restart.
func TestTwoCAsShareToken(t *testing.T) {
	st := softHSMToken(t, "strongroom-shared")
	pinEnv := "STRONGROOM_PKCS11_PIN=" + st.PIN
	start := func(prefix string) *CA {
		return StartCA(t, Options{InitArgs: []string{"--ca-keys", "pkcs11", "--unseal", "pkcs11", "--pkcs11-module", st.Module,
			"--pkcs11-token", st.Label, "--pkcs11-label-prefix", prefix}, Env: []string{pinEnv}})
	}
	prod, staging := start("prod-"), start("staging-")
	if out, err := prod.CLI(context.Background(), "issuer", "add", "intermediate-2"); err != nil {
		t.Fatalf("ca issuer add: %v\n%s", err, out)
	}

	tok, err := pkcs11.Open(context.Background(), st.Options())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ca     *CA
		prefix string
	}{{prod, "prod-"}, {staging, "staging-"}} {
		for label, cert := range map[string]*x509.Certificate{"root": readPEMCert(t, c.ca.Root), "intermediate": readPEMCert(t, c.ca.Intermediate)} {
			s, err := tok.Signer(c.prefix + label)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
				t.Fatalf("%s's %s certificate is not for the token's key %q", c.prefix, label, c.prefix+label)
			}
		}
		if _, err := tok.Wrapper(c.prefix+"strongroom-kek", false); err != nil {
			t.Fatalf("%s's KEK wrapping key: %v", c.prefix, err)
		}
		c.ca.Restart()
		chain := issueChain(t, c.ca, goCSR(t, "app.localhost"))
		if inter := readPEMCert(t, c.ca.Intermediate); !bytes.Equal(chain[0].RawIssuer, inter.RawSubject) {
			t.Fatalf("%s issued under %s, want %s", c.prefix, chain[0].Issuer, inter.Subject)
		}
	}
	if s, err := tok.Signer("prod-intermediate-2"); err != nil ||
		!s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(readPEMCert(t, filepath.Join(prod.Dir, "intermediate-2.pem")).PublicKey) {
		t.Fatalf("ca issuer add did not make prod-intermediate-2 on the token: %v", err)
	}
	for _, l := range []string{"root", "intermediate", "intermediate-2"} {
		if has, err := tok.Has(l); err != nil || has {
			t.Fatalf("the token holds an unprefixed %q (%v)", l, err)
		}
	}
	if _, err := tok.Wrapper("strongroom-kek", false); !errors.Is(err, pkcs11.ErrNotFound) {
		t.Fatalf("the token holds an unprefixed KEK wrapping key (%v)", err)
	}
	tok.Close()
}

// softHSMToken skips (or, in CI, fails) a test in a build without PKCS#11,
// and gives it a fresh SoftHSM token labelled label.
func softHSMToken(t *testing.T, label string) softhsmtest.Token {
	t.Helper()
	if !pkcs11.Available {
		storagetest.ServiceMissing(t, "PKCS#11 (a cgo build)", errors.New("built without cgo"))
	}
	return softhsmtest.New(t, label)
}
