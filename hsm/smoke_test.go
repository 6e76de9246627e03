package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestSignRoundTrip(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "root"})
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("hello"))
		sig, err := f.alice.Sign(ctx, k.ID, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.alice.Verify(ctx, k.ID, 0, d[:], sig, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		rep, err := f.m.VerifyAudit(ctx)
		if err != nil || rep.FirstBad != 0 {
			t.Fatalf("audit: %+v %v", rep, err)
		}
	})
}
