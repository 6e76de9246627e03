//go:build cgo && !nopkcs11

package pkcs11_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11/softhsmtest"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestAutoUnseal: an embedded HSM whose KEK is sealed by an AES key on a
// SoftHSM token unseals with that key and nothing else, in a new module
// (a restart) as well; the key is sensitive, never extractable and may
// only encrypt and decrypt.
func TestAutoUnseal(t *testing.T) {
	st := softhsmtest.New(t, "strongroom-kek")
	ctx := context.Background()
	tok, err := pkcs11.Open(ctx, st.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.Wrapper("kek", false); !errors.Is(err, pkcs11.ErrNotFound) {
		t.Fatalf("wrapper before it exists: %v", err)
	}
	w, err := tok.Wrapper("kek", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Wrapper("kek", true); !errors.Is(err, pkcs11.ErrExists) {
		t.Fatalf("second wrapper with one label: %v", err)
	}
	// The label of a secret key is taken for key pairs too (a review made
	// a second CA's issuer key with another CA's KEK label on one token).
	if has, err := tok.Has("kek"); err != nil || !has {
		t.Fatalf("Has of the wrapping key's label: %v, %v", has, err)
	}
	if _, err := tok.Generate("kek", "p256"); !errors.Is(err, pkcs11.ErrExists) {
		t.Fatalf("a key pair with the wrapping key's label: %v", err)
	}
	other, err := tok.Wrapper("other", true)
	if err != nil {
		t.Fatal(err)
	}

	db, _ := storagetest.SQLite(t)
	m, err := hsm.New(ctx, hsm.Options{Store: db, KeySyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Initialize(ctx, hsm.InitOptions{Method: hsm.MethodPKCS11, OfficerName: "officer", OfficerPIN: "officer-pin-1"}); !errors.Is(err, hsm.ErrInvalid) {
		t.Fatalf("pkcs11 method without a wrapper: %v", err)
	}
	if _, err := m.Initialize(ctx, hsm.InitOptions{Method: hsm.MethodPKCS11, Wrapper: w, OfficerName: "officer", OfficerPIN: "officer-pin-1"}); err != nil {
		t.Fatal(err)
	}
	officer, err := m.Login(ctx, "officer", "officer-pin-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := officer.CreateUser(ctx, "app", hsm.RoleUser, "app-pin-12"); err != nil {
		t.Fatal(err)
	}
	app, _ := m.Login(ctx, "app", "app-pin-12")
	k, err := app.GenerateKey(ctx, hsm.KeySpec{Type: hsm.AES256, Label: "data"})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := app.Encrypt(ctx, k.ID, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Close(ctx)

	// A restart: a new module on the same keystore.
	m2, err := hsm.New(ctx, hsm.Options{Store: db, KeySyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close(ctx)
	if err := m2.Unseal(ctx, hsm.UnsealInput{}); !errors.Is(err, hsm.ErrInvalid) {
		t.Fatalf("unseal without the token: %v", err)
	}
	if err := m2.Unseal(ctx, hsm.UnsealInput{Wrapper: other}); !errors.Is(err, hsm.ErrBadUnseal) {
		t.Fatalf("unseal with another token key: %v", err)
	}
	if err := m2.Unseal(ctx, hsm.UnsealInput{Wrapper: w}); err != nil {
		t.Fatal(err)
	}
	app2, err := m2.Login(ctx, "app", "app-pin-12")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := app2.Decrypt(ctx, k.ID, ct, nil); err != nil || string(pt) != "secret" {
		t.Fatalf("after auto-unseal: %q %v", pt, err)
	}

	out := pkcs11Tool(t, st, "--list-objects", "--type", "secrkey")
	i := strings.Index(out, "label:      kek")
	if i < 0 {
		t.Fatalf("pkcs11-tool does not list the wrapping key:\n%s", out)
	}
	obj := out[i:]
	if j := strings.Index(obj[1:], "Secret Key Object"); j > 0 {
		obj = obj[:j]
	}
	if !strings.Contains(obj, "never extractable") || !strings.Contains(obj, "Usage:      encrypt, decrypt\n") {
		t.Fatalf("wrapping key attributes:\n%s", obj)
	}
}
