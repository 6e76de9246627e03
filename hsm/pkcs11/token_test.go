//go:build cgo && !nopkcs11

package pkcs11_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11/softhsmtest"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestToken drives SoftHSMv2 for real: generate, find again after a new
// login, sign, refuse a second key with the same label, keep the private
// key non-extractable, sensitive and for signing only, and say what is
// wrong without the PIN.
func TestToken(t *testing.T) {
	st := softhsmtest.New(t, "strongroom-test")
	ctx := context.Background()
	tok, err := pkcs11.Open(ctx, st.Options())
	if err != nil {
		t.Fatal(err)
	}
	ec, err := tok.Generate("intermediate", "p256")
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := ec.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("generated key is %T", ec.Public())
	}
	rsaKey, err := tok.Generate("root", "rsa2048")
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := rsaKey.Public().(*rsa.PublicKey); !ok || pub.N.BitLen() != 2048 {
		t.Fatalf("generated key is %T", rsaKey.Public())
	}
	if _, err := tok.Generate("intermediate", "p256"); !errors.Is(err, pkcs11.ErrExists) {
		t.Fatalf("second key with the same label: %v, want ErrExists", err)
	}
	if _, err := tok.Generate("x", "ed448"); !errors.Is(err, pkcs11.ErrInvalid) {
		t.Fatalf("unknown key type: %v", err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}

	// A new login finds the keys by label; they sign what their public
	// halves verify.
	tok, err = pkcs11.Open(ctx, st.Options())
	if err != nil {
		t.Fatal(err)
	}
	s, err := tok.Signer("intermediate")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Public().(*ecdsa.PublicKey).Equal(ec.Public()) {
		t.Fatal("found another key than the one generated")
	}
	d := sha256.Sum256([]byte("tbs"))
	sig, err := s.Sign(nil, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("signature: %v", err)
	}
	r, err := tok.Signer("root")
	if err != nil {
		t.Fatal(err)
	}
	if sig, err := r.Sign(nil, d[:], crypto.SHA256); err != nil || rsa.VerifyPKCS1v15(r.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig) != nil {
		t.Fatalf("RSA signature: %v", err)
	}
	if _, err := tok.Signer("nope"); !errors.Is(err, pkcs11.ErrNotFound) {
		t.Fatalf("unknown label: %v, want ErrNotFound", err)
	}

	// The private keys never leave the token: pkcs11-tool, logged in,
	// reports them sensitive and never extractable.
	{
		out := pkcs11Tool(t, st, "--list-objects", "--type", "privkey")
		for _, label := range []string{"intermediate", "root"} {
			i := strings.Index(string(out), `label:      `+label)
			if i < 0 {
				t.Fatalf("pkcs11-tool does not list private key %q:\n%s", label, out)
			}
			obj := string(out[i:])
			if j := strings.Index(obj[1:], "Private Key Object"); j > 0 {
				obj = obj[:j]
			}
			if !strings.Contains(obj, "never extractable") || !strings.Contains(obj, "always sensitive") {
				t.Fatalf("private key %q is not sensitive and non-extractable:\n%s", label, obj)
			}
			if !strings.Contains(obj, "Usage:      sign\n") {
				t.Fatalf("private key %q may do more than sign:\n%s", label, obj)
			}
		}
	}

	// Wrong PIN, wrong token, missing settings: clear errors, no PIN. (A
	// process logged in once stays logged in while any session is open —
	// PKCS#11 login state is per application — so close first.)
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = pkcs11.Open(ctx, pkcs11.Options{Module: st.Module, Token: st.Label, PIN: "wrong-pin-7777"})
	if err == nil || strings.Contains(err.Error(), "wrong-pin-7777") {
		t.Fatalf("wrong PIN: %v", err)
	}
	if _, err := pkcs11.Open(ctx, pkcs11.Options{Module: st.Module, Token: "no-such-token", PIN: st.PIN}); err == nil ||
		strings.Contains(err.Error(), st.PIN) || !strings.Contains(err.Error(), "no-such-token") {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := pkcs11.Open(ctx, pkcs11.Options{Module: "/nonexistent/lib.so", Token: st.Label, PIN: st.PIN}); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/lib.so: stat /nonexistent/lib.so: no such file or directory") {
		t.Fatalf("a missing module: %v (want the reason)", err)
	}
	// A module that exists but cannot be used: the loader's reason.
	garbage := filepath.Join(t.TempDir(), "garbage.so")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not an ELF file "), 64), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pkcs11.Open(ctx, pkcs11.Options{Module: garbage, Token: st.Label, PIN: st.PIN}); !errors.Is(err, pkcs11.ErrInvalid) ||
		!strings.Contains(err.Error(), "cannot be loaded") || !strings.Contains(err.Error(), "invalid ELF header") {
		t.Fatalf("a module that is not a shared object: %v (want the loader's reason)", err)
	}
	if lib := sharedLibrary(t); lib != "" {
		if _, err := pkcs11.Open(ctx, pkcs11.Options{Module: lib, Token: st.Label, PIN: st.PIN}); !errors.Is(err, pkcs11.ErrInvalid) ||
			!strings.Contains(err.Error(), "not a PKCS#11 module") {
			t.Fatalf("a shared object that is not a PKCS#11 module (%s): %v", lib, err)
		}
	}
	if _, err := pkcs11.Open(ctx, pkcs11.Options{Module: st.Module}); !errors.Is(err, pkcs11.ErrInvalid) {
		t.Fatalf("no token or PIN: %v", err)
	}
	t.Logf("wrong PIN: %v", err)
}

// pkcs11Tool runs OpenSC's pkcs11-tool, logged in to the token, and returns
// its output; without it the test skips (fails under
// STRONGROOM_REQUIRE_SERVICES=1).
func pkcs11Tool(t *testing.T, st softhsmtest.Token, args ...string) string {
	t.Helper()
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		storagetest.ServiceMissing(t, "pkcs11-tool (apt-get install opensc)", err)
	}
	out, err := exec.Command(tool, append([]string{"--module", st.Module, "--token-label", st.Label, "--login", "--pin", st.PIN}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	return string(out)
}

// sharedLibrary finds a shared object that is surely no PKCS#11 module
// (libz, on every Debian), or "" when none is found.
func sharedLibrary(t *testing.T) string {
	out, err := exec.Command("ldconfig", "-p").Output()
	if err != nil {
		t.Logf("ldconfig -p: %v; skipping the not-a-module case", err)
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "libz.so.1" {
			return f[len(f)-1]
		}
	}
	t.Log("no libz.so.1 in ldconfig -p; skipping the not-a-module case")
	return ""
}
