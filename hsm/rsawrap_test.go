package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

// TestRSAAESKeyWrap: bring your own key — a P-256 key wrapped outside the
// module with only the public half of an RSA unwrap key imports and signs
// as the original; an extractable key leaves wrapped to an outside RSA key
// and opens there; non-extractable keys, short RSA keys, tampered blobs
// and a key without the unwrap usage are refused; exports are audited.
func TestRSAAESKeyWrap(t *testing.T) {
	f := setup(t, sqliteDB(t))
	ctx := context.Background()
	wk, err := f.alice.GenerateKey(ctx, KeySpec{Type: RSA3072, Label: "import", Usage: UsageUnwrap | UsageWrap})
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := f.alice.PublicKeys(ctx, wk.ID)
	if err != nil {
		t.Fatal(err)
	}
	wrapPub := pubs[len(pubs)-1].PublicKey.(*rsa.PublicKey)

	mine, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8, _ := x509.MarshalPKCS8PrivateKey(mine)
	blob, err := rsaAESWrap(wrapPub, p8)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != 384+len(p8)+8+(8-len(p8)%8)%8 {
		t.Fatalf("blob of %d bytes for %d bytes of material", len(blob), len(p8))
	}
	imp, err := f.alice.ImportWrapped(ctx, KeySpec{Type: P256, Label: "byok"}, wk.ID, blob)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("hello"))
	sig, err := f.alice.Sign(ctx, imp.ID, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(&mine.PublicKey, d[:], sig) {
		t.Fatalf("the imported key does not sign as the original: %v", err)
	}
	// A blob wrapped to the public key before a rotation still imports.
	if _, err := f.alice.RotateKey(ctx, wk.ID); err != nil {
		t.Fatal(err)
	}
	if again, err := f.alice.ImportWrapped(ctx, KeySpec{Type: P256, Label: "byok-again"}, wk.ID, blob); err != nil ||
		!again.PublicKey.(*ecdsa.PublicKey).Equal(&mine.PublicKey) {
		t.Fatalf("importing a blob wrapped for the version before a rotation: %v", err)
	}
	tampered := append([]byte{}, blob...)
	tampered[len(tampered)-1] ^= 1
	head := append([]byte{}, blob...)
	head[5] ^= 1
	for name, b := range map[string][]byte{"tampered tail": tampered, "tampered head": head, "short": blob[:100], "empty": nil} {
		if _, err := f.alice.ImportWrapped(ctx, KeySpec{Type: P256, Label: "bad-" + strings.ReplaceAll(name, " ", "-")}, wk.ID, b); !errors.Is(err, ErrVerification) {
			t.Errorf("%s: %v, want ErrVerification", name, err)
		}
	}
	// Key separation: a key that decrypts could open a wrapped blob's head.
	for _, u := range []Usage{UsageUnwrap | UsageDecrypt, UsageWrap | UsageSign, UsageUnwrap | UsageEncrypt} {
		if _, err := f.alice.GenerateKey(ctx, KeySpec{Type: RSA2048, Label: "mixed", Usage: u}); !errors.Is(err, ErrInvalid) {
			t.Errorf("RSA key with %s: %v, want ErrInvalid", u, err)
		}
	}
	if _, err := f.alice.GenerateKey(ctx, KeySpec{Type: RSA2048, Label: "leaky", Usage: UsageUnwrap, Extractable: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("extractable RSA wrapping key: %v, want ErrInvalid", err)
	}
	signOnly, err := f.alice.GenerateKey(ctx, KeySpec{Type: RSA2048, Label: "sign-only"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.ImportWrapped(ctx, KeySpec{Type: P256, Label: "x"}, signOnly.ID, blob); err == nil {
		t.Error("a key without the unwrap usage unwrapped")
	}

	// Export to an outside RSA key (another HSM's import key).
	outside, _ := rsa.GenerateKey(rand.Reader, 2048)
	ex, err := f.alice.GenerateKey(ctx, KeySpec{Type: Ed25519, Label: "leaving", Extractable: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := f.alice.ExportWrappedTo(ctx, ex.ID, &outside.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	mat, err := rsaAESUnwrap(outside, out)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(mat)
	if err != nil {
		t.Fatal(err)
	}
	exPubs, _ := f.alice.PublicKeys(ctx, ex.ID)
	if !k.(ed25519.PrivateKey).Public().(ed25519.PublicKey).Equal(exPubs[0].PublicKey) {
		t.Fatal("the exported key is not the key")
	}
	// And back in through the module's own RSA key: wrap under it, import.
	viaModule, _, err := f.alice.ExportWrapped(ctx, ex.ID, wk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.ImportWrapped(ctx, KeySpec{Type: Ed25519, Label: "back"}, wk.ID, viaModule); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.alice.ExportWrappedTo(ctx, imp.ID, &outside.PublicKey); !errors.Is(err, ErrNotExtractable) {
		t.Errorf("non-extractable: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, _, err := f.alice.ExportWrappedTo(ctx, ex.ID, &small.PublicKey); !errors.Is(err, ErrInvalid) {
		t.Errorf("RSA-1024 wrapping key: %v", err)
	}
	if _, _, err := f.bob.ExportWrappedTo(ctx, ex.ID, &outside.PublicKey); err == nil {
		t.Error("another user exported alice's key")
	}
	entries, err := f.officer.AuditEntries(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Action == "key.export" && e.Object == ex.ID && strings.Contains(e.Details, "wrapped-to=rsa2048:") {
			found = true
		}
	}
	if !found {
		t.Error("the export to an outside key is not in the audit log")
	}
}
