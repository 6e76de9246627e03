package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
)

// TestSealDuringSignatures seals while signatures are in flight: every Sign
// either succeeds or fails with a module error, none panics, and (under
// -race) sealing does not zero a key while a signature still reads it.
func TestSealDuringSignatures(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	for _, kt := range []KeyType{P256, Ed25519} {
		t.Run(string(kt), func(t *testing.T) {
			if err := f.m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
				t.Fatal(err)
			}
			alice := f.login(t, "alice", alicePIN)
			k, err := alice.GenerateKey(ctx, KeySpec{Type: kt, Label: "race-" + string(kt)})
			if err != nil {
				t.Fatal(err)
			}
			sg, err := alice.Signer(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("seal me")
			var opts crypto.SignerOpts = crypto.Hash(0)
			if kt != Ed25519 {
				d := sha256.Sum256(msg)
				msg, opts = d[:], crypto.SHA256
			}
			if _, err := sg.Sign(nil, msg, opts); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errc := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					for {
						if _, err := sg.Sign(nil, msg, opts); err != nil {
							if !errors.Is(err, ErrSealed) && !errors.Is(err, ErrNotLoggedIn) && !errors.Is(err, ErrNotFound) {
								errc <- err
							}
							return
						}
					}
				})
			}
			f.m.Seal()
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Errorf("sign during seal: %v", err)
			}
		})
	}
}
