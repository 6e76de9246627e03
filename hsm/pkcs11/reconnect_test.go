//go:build cgo && !nopkcs11

package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11/softhsmtest"
)

// TestTokenComesBack: a token removed while the node holds its keys (here
// SoftHSM's token directory moved away) fails signatures and unwrapping
// with an error, and once it is put back the same signer and a new Wrapper
// work again without reopening anything by hand (a review found a node
// answering 503 for good after the token came back, until a restart).
func TestTokenComesBack(t *testing.T) {
	st := softhsmtest.New(t, "comeback")
	was := pkcs11.ReconnectEvery
	pkcs11.ReconnectEvery = 100 * time.Millisecond
	defer func() { pkcs11.ReconnectEvery = was }()
	ctx := context.Background()
	tok, err := pkcs11.Open(ctx, st.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	s, err := tok.Generate("intermediate", "p256")
	if err != nil {
		t.Fatal(err)
	}
	// A second key: the first signer to reconnect closes the context this
	// one's handle belongs to.
	root, err := tok.Generate("root", "p256")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Wrapper("strongroom-kek", true); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("tbs"))
	sign := func() error {
		sig, err := s.Sign(nil, d[:], crypto.SHA256)
		if err == nil && !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
			t.Fatal("a signature that does not verify")
		}
		return err
	}
	if err := sign(); err != nil {
		t.Fatal(err)
	}

	tokens := filepath.Join(filepath.Dir(st.Conf), "tokens")
	away := tokens + ".away"
	if err := os.Rename(tokens, away); err != nil {
		t.Fatal(err)
	}
	if err := sign(); err == nil {
		t.Fatal("signed with the token gone")
	}
	time.Sleep(2 * pkcs11.ReconnectEvery)
	if err := sign(); err == nil {
		t.Fatal("signed with the token gone, after a reconnection")
	}
	if _, err := tok.Wrapper("strongroom-kek", false); err == nil {
		t.Fatal("found the wrapping key with the token gone")
	}

	if err := os.Rename(away, tokens); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err = sign(); err != nil && time.Now().Before(deadline); err = sign() {
		time.Sleep(pkcs11.ReconnectEvery)
	}
	if err != nil {
		t.Fatalf("the token is back, the signer still fails: %v", err)
	}
	if sig, err := root.Sign(nil, d[:], crypto.SHA256); err != nil || !ecdsa.VerifyASN1(root.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("the token is back and reopened by another signer, the second signer fails: %v", err)
	}
	for _, err = tok.Wrapper("strongroom-kek", false); err != nil && time.Now().Before(deadline); _, err = tok.Wrapper("strongroom-kek", false) {
		time.Sleep(pkcs11.ReconnectEvery)
	}
	if err != nil {
		t.Fatalf("the token is back, the wrapping key is not found: %v", err)
	}
}
