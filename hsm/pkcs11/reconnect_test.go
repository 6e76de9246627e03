//go:build cgo && !nopkcs11

package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
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

// TestRefusedPINNotTriedAgain: a review changed the token's PIN under a
// running node and made its session drop; the node then logged in with
// its old PIN at every reconnection (12 wrong PINs a minute: an HSM that
// locks after ten would be locked). After the token refuses the PIN once,
// no login is tried again, and signatures say why.
func TestRefusedPINNotTriedAgain(t *testing.T) {
	st, tok, s := reconnectingToken(t, "pinchange")
	d := sha256.Sum256([]byte("tbs"))
	if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	logins, restore := pkcs11.CountLogins()
	defer restore()
	tok.SetPIN("not-the-pin-1")
	// The session drops: the token goes away and comes back.
	tokens := filepath.Join(filepath.Dir(st.Conf), "tokens")
	if err := os.Rename(tokens, tokens+".away"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(nil, d[:], crypto.SHA256); err == nil {
		t.Fatal("signed with the token gone")
	}
	if err := os.Rename(tokens+".away", tokens); err != nil {
		t.Fatal(err)
	}
	var last error
	refusedAt := int64(-1)
	for i := 0; i < 10; i++ {
		time.Sleep(2 * pkcs11.ReconnectEvery)
		if _, last = s.Sign(nil, d[:], crypto.SHA256); last == nil {
			t.Fatal("signed after logging in with a wrong PIN")
		}
		if refusedAt < 0 && strings.Contains(last.Error(), "refused this node's PIN") {
			refusedAt = logins.Load()
		}
	}
	if refusedAt < 0 {
		t.Fatalf("the signature's error never said the PIN was refused: %v", last)
	}
	if n := logins.Load(); n != refusedAt {
		t.Errorf("%d logins after the token refused the PIN, want none", n-refusedAt)
	}
	if !strings.Contains(last.Error(), "refused this node's PIN") {
		t.Errorf("the signature's error does not say the PIN was refused: %v", last)
	}
}

// TestPresentSeesTokenGone: a review saw /readyz say ready for as long as
// nothing signed with a token that was gone. Present says so without a
// signature, and says nothing once the token is back.
func TestPresentSeesTokenGone(t *testing.T) {
	st, _, s := reconnectingToken(t, "present")
	p, ok := s.(interface{ Present() error })
	if !ok {
		t.Fatalf("a token signer (%T) cannot say whether its key is there", s)
	}
	if err := p.Present(); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(filepath.Dir(st.Conf), "tokens")
	if err := os.Rename(tokens, tokens+".away"); err != nil {
		t.Fatal(err)
	}
	if err := p.Present(); err == nil {
		t.Fatal("the key is there with the token gone")
	}
	if err := os.Rename(tokens+".away", tokens); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	err := p.Present()
	for ; err != nil && time.Now().Before(deadline); err = p.Present() {
		time.Sleep(pkcs11.ReconnectEvery)
	}
	if err != nil {
		t.Fatalf("the token is back, the key is not: %v", err)
	}
	d := sha256.Sum256([]byte("tbs"))
	if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatalf("signing once the key is there again: %v", err)
	}
}

// reconnectingToken is a fresh SoftHSM token labelled label, opened, that
// is opened again at most every 50 ms, with a P-256 key "intermediate".
func reconnectingToken(t *testing.T, label string) (softhsmtest.Token, *pkcs11.Token, crypto.Signer) {
	t.Helper()
	st := softhsmtest.New(t, label)
	was := pkcs11.ReconnectEvery
	pkcs11.ReconnectEvery = 50 * time.Millisecond
	t.Cleanup(func() { pkcs11.ReconnectEvery = was })
	tok, err := pkcs11.Open(context.Background(), st.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	s, err := tok.Generate("intermediate", "p256")
	if err != nil {
		t.Fatal(err)
	}
	return st, tok, s
}

// TestKeyGoneTokenKept: a key deleted from a token that still answers is
// reported gone, by Present and by Sign, without opening the token again
// (a review saw /readyz's checks reopen it for a deleted root key; the
// reopening's login failed, as the PIN had been changed, and the
// intermediate, still there, stopped signing until a restart).
func TestKeyGoneTokenKept(t *testing.T) {
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		storagetest.ServiceMissing(t, "pkcs11-tool (apt-get install opensc)", err)
	}
	st, tok, inter := reconnectingToken(t, "keygone")
	root, err := tok.Generate("root", "p256")
	if err != nil {
		t.Fatal(err)
	}
	logins, restore := pkcs11.CountLogins()
	defer restore()
	if out, err := exec.Command(tool, "--module", st.Module, "--token-label", st.Label, "--login", "--pin", st.PIN,
		"--delete-object", "--type", "privkey", "--label", "root").CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool --delete-object: %v\n%s", err, out)
	}
	d := sha256.Sum256([]byte("tbs"))
	for i := 0; i < 3; i++ {
		time.Sleep(2 * pkcs11.ReconnectEvery)
		if err := root.(interface{ Present() error }).Present(); !errors.Is(err, pkcs11.ErrNotFound) {
			t.Fatalf("Present of the deleted key: %v", err)
		}
		if _, err := root.Sign(nil, d[:], crypto.SHA256); err == nil {
			t.Fatal("the deleted key signed")
		}
		if _, err := inter.Sign(nil, d[:], crypto.SHA256); err != nil {
			t.Fatalf("the key still on the token: %v", err)
		}
	}
	if n := logins.Load(); n != 0 {
		t.Errorf("the token was opened again %d times for a deleted key", n)
	}
}
