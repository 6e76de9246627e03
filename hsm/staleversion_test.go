package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
)

// staleKeys are one key of each kind of data-naming operation, generated on
// node A and cached at version 1 on node B.
type staleKeys struct {
	sign, aes, rsa, mac, wrapped KeyInfo
}

func newStaleKeys(t *testing.T, n *nodes) staleKeys {
	t.Helper()
	ctx := context.Background()
	var k staleKeys
	for _, g := range []struct {
		into *KeyInfo
		spec KeySpec
	}{
		{&k.sign, KeySpec{Type: P256, Label: "sign"}},
		{&k.aes, KeySpec{Type: AES256, Label: "data"}},
		{&k.rsa, KeySpec{Type: RSA2048, Label: "oaep", Usage: UsageEncrypt | UsageDecrypt}},
		{&k.mac, KeySpec{Type: HMACSHA256, Label: "mac"}},
		{&k.wrapped, KeySpec{Type: P256, Label: "exported", Extractable: true}},
	} {
		info, err := n.alice.GenerateKey(ctx, g.spec)
		if err != nil {
			t.Fatalf("A generates %s: %v", g.spec.Label, err)
		}
		*g.into = info
		if _, err := n.bAlice.GetKey(ctx, info.ID); err != nil {
			t.Fatalf("B caches %s: %v", g.spec.Label, err)
		}
	}
	return k
}

// rotateOnA rotates ids on node A to version want.
func rotateOnA(t *testing.T, n *nodes, want int, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if got, err := n.alice.RotateKey(context.Background(), id); err != nil || got.Version != want {
			t.Fatalf("A rotates %s: version %d, %v (want %d)", id, got.Version, err, want)
		}
	}
}

// cachedOn returns the key object node m has cached for id, or nil.
func cachedOn(m *Module, id string) *keyObject {
	st := m.state.Load()
	if st == nil {
		return nil
	}
	if v, ok := st.keys.Load(id); ok {
		return v.(*keyObject)
	}
	return nil
}

// withVersion returns a copy of an Encrypt ciphertext whose header names v.
func withVersion(ct []byte, v uint32) []byte {
	out := bytes.Clone(ct)
	binary.BigEndian.PutUint32(out[1:hdrLen], v)
	return out
}

// TestTwoNodesStaleVersionReloads: node A rotates keys node B has cached at
// version 1 and uses version 2; B verifies, decrypts, unwraps and checks
// MACs made with version 2 without restarting.
func TestTwoNodesStaleVersionReloads(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k := newStaleKeys(t, n)
		rotateOnA(t, n, 2, k.sign.ID, k.aes.ID, k.rsa.ID, k.mac.ID)
		msg := []byte("made on A with version 2")

		sigA2 := signWith(t, "A", n.alice, k.sign.ID, 2, "A v2")
		ctAES, err := n.alice.Encrypt(ctx, k.aes.ID, msg, []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		ctRSA, err := n.alice.Encrypt(ctx, k.rsa.ID, msg, []byte("label"))
		if err != nil {
			t.Fatal(err)
		}
		dataKey, wrappedDataKey, err := n.alice.GenerateDataKey(ctx, k.aes.ID, 256)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := n.alice.Wrap(ctx, k.aes.ID, bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		mac, err := n.alice.HMAC(ctx, k.mac.ID, msg)
		if err != nil {
			t.Fatal(err)
		}

		// A raw RSA-OAEP ciphertext names no version: made with A's
		// current public key, B, which has only version 1, opens it
		// with the current version it reads.
		cur, err := n.alice.GetKey(ctx, k.rsa.ID)
		if err != nil {
			t.Fatal(err)
		}
		rawRSA, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, cur.PublicKey.(*rsa.PublicKey), msg, []byte("label"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := n.bAlice.DecryptVersion(ctx, k.rsa.ID, 0, rawRSA, []byte("label")); err != nil || !bytes.Equal(got, msg) {
			t.Errorf("B decrypts a raw RSA-OAEP ciphertext to A's version 2: %q, %v", got, err)
		}
		verifies(t, "B", n.bAlice, k.sign.ID, sigA2)
		for name, ct := range map[string][]byte{"AES-GCM": ctAES, "RSA-OAEP": ctRSA} {
			id, aad := k.aes.ID, []byte("aad")
			if name == "RSA-OAEP" {
				id, aad = k.rsa.ID, []byte("label")
			}
			if got, err := n.bAlice.Decrypt(ctx, id, ct, aad); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("B decrypts A's version 2 %s ciphertext: %q, %v", name, got, err)
			}
		}
		if got, err := n.bAlice.DecryptDataKey(ctx, k.aes.ID, wrappedDataKey); err != nil || !bytes.Equal(got, dataKey) {
			t.Errorf("B decrypts A's version 2 data key: %v", err)
		}
		if got, err := n.bAlice.Unwrap(ctx, k.aes.ID, blob); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{7}, 32)) {
			t.Errorf("B unwraps A's version 2 blob: %v", err)
		}
		if err := n.bAlice.VerifyHMAC(ctx, k.mac.ID, msg, mac); err != nil {
			t.Errorf("B verifies A's version 2 MAC: %v", err)
		}
		if err := n.bAlice.VerifyHMAC(ctx, k.mac.ID, []byte("other"), mac); !errors.Is(err, ErrVerification) {
			t.Errorf("B verifies a MAC over other data: %v, want ErrVerification", err)
		}

		// B's import of A's export needs the same reload: A rotates the
		// wrapping key again (B has version 2 now) and wraps with version 3.
		rotateOnA(t, n, 3, k.aes.ID)
		exported, _, err := n.alice.ExportWrapped(ctx, k.wrapped.ID, k.aes.ID)
		if err != nil {
			t.Fatal(err)
		}
		imp, err := n.bAlice.ImportWrapped(ctx, KeySpec{Type: P256, Label: "imported"}, k.aes.ID, exported)
		if err != nil {
			t.Fatalf("B imports a key A wrapped with version 3: %v", err)
		}
		if !imp.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.wrapped.PublicKey) {
			t.Errorf("B imported a different key")
		}

		// B's cache now has the new versions: its own operations use them.
		for _, id := range []string{k.sign.ID, k.rsa.ID, k.mac.ID} {
			if got, err := n.bAlice.GetKey(ctx, id); err != nil || got.Version != 2 {
				t.Errorf("B's key %s after the reload: version %d, %v (want 2)", id, got.Version, err)
			}
		}
		if got, err := n.bAlice.GetKey(ctx, k.aes.ID); err != nil || got.Version != 3 {
			t.Errorf("B's AES key after the reload: version %d, %v (want 3)", got.Version, err)
		}
	})
}

// TestTwoNodesStaleVersionFarAbove: a version number no node made fails as
// before, and leaves B's cached key as it was.
func TestTwoNodesStaleVersionFarAbove(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k := newStaleKeys(t, n)
		ctB1, err := n.bAlice.Encrypt(ctx, k.aes.ID, []byte("B v1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		sigB1 := signWith(t, "B", n.bAlice, k.sign.ID, 1, "B v1")
		rotateOnA(t, n, 2, k.sign.ID, k.aes.ID)
		ctA2, err := n.alice.Encrypt(ctx, k.aes.ID, []byte("A v2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		sigA2 := signWith(t, "A", n.alice, k.sign.ID, 2, "A v2")

		// B is stale (v1): v99 makes it read the key, which has no v99.
		if _, err := n.bAlice.Decrypt(ctx, k.aes.ID, withVersion(ctA2, 99), nil); !errors.Is(err, ErrWrongKeyVersion) {
			t.Fatalf("B decrypts a version 99 ciphertext: %v, want ErrWrongKeyVersion", err)
		}
		sg := sigA2
		sg.version = 99
		if err := n.bAlice.Verify(ctx, k.sign.ID, 99, sg.digest, sg.sig, crypto.SHA256); !errors.Is(err, ErrWrongKeyVersion) {
			t.Fatalf("B verifies with version 99: %v, want ErrWrongKeyVersion", err)
		}
		// The read found version 2; asking for v99 again changes nothing.
		before := cachedOn(n.b, k.aes.ID)
		if before == nil {
			t.Fatalf("B has no cached key after the read")
		}
		if v := before.current().version; v != 2 {
			t.Fatalf("B's cached key after the read is at version %d, want 2", v)
		}
		if _, err := n.bAlice.Decrypt(ctx, k.aes.ID, withVersion(ctA2, 99), nil); !errors.Is(err, ErrWrongKeyVersion) {
			t.Fatalf("B decrypts a version 99 ciphertext again: %v", err)
		}
		if after := cachedOn(n.b, k.aes.ID); after != before {
			t.Fatalf("a version 99 request replaced B's cached key")
		}
		for name, ct := range map[string][]byte{"B v1": ctB1, "A v2": ctA2} {
			if got, err := n.bAlice.Decrypt(ctx, k.aes.ID, ct, nil); err != nil || string(got) != name {
				t.Errorf("B decrypts %q after v99: %q, %v", name, got, err)
			}
		}
		verifies(t, "B", n.bAlice, k.sign.ID, sigB1)
		verifies(t, "B", n.bAlice, k.sign.ID, sigA2)
		ctB2, err := n.bAlice.Encrypt(ctx, k.aes.ID, []byte("B v2"), nil)
		if err != nil || binary.BigEndian.Uint32(ctB2[1:hdrLen]) != 2 {
			t.Fatalf("B encrypts after v99: %v (want version 2)", err)
		}
		if got, err := n.alice.Decrypt(ctx, k.aes.ID, ctB2, nil); err != nil || string(got) != "B v2" {
			t.Errorf("A decrypts B's version 2 ciphertext: %q, %v", got, err)
		}
	})
}

// TestTwoNodesStaleVersionDestroyed: a key A destroyed is reported gone on
// B when B reads it for a version it lacks, and B forgets it.
func TestTwoNodesStaleVersionDestroyed(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k := newStaleKeys(t, n)
		rotateOnA(t, n, 2, k.aes.ID, k.mac.ID)
		ctA2, err := n.alice.Encrypt(ctx, k.aes.ID, []byte("A v2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		macA2, err := n.alice.HMAC(ctx, k.mac.ID, []byte("A v2"))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{k.aes.ID, k.mac.ID} {
			if err := n.alice.DestroyKey(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := n.bAlice.Decrypt(ctx, k.aes.ID, ctA2, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B decrypts with a key A destroyed: %v, want ErrNotFound", err)
		}
		if ko := cachedOn(n.b, k.aes.ID); ko != nil {
			t.Fatalf("B still caches the destroyed key (version %d)", ko.current().version)
		}
		if _, err := n.bAlice.Encrypt(ctx, k.aes.ID, []byte("after"), nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B encrypts with a key A destroyed: %v, want ErrNotFound", err)
		}
		if err := n.bAlice.VerifyHMAC(ctx, k.mac.ID, []byte("A v2"), macA2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B checks a MAC with a key A destroyed: %v, want ErrNotFound", err)
		}
		if ko := cachedOn(n.b, k.mac.ID); ko != nil {
			t.Fatalf("B still caches the destroyed MAC key")
		}
	})
}

// countStore counts reads of single keys.
type countStore struct {
	Store
	reads atomic.Int64
}

func (c *countStore) HSMObject(ctx context.Context, id string) ([]storage.HSMObject, error) {
	c.reads.Add(1)
	return c.Store.HSMObject(ctx, id)
}

// TestStaleVersionReadsBounded: a version at or below the cached newest is
// refused without a read, one above it costs one read per call, and callers
// waiting for the same new version read it once between them.
func TestStaleVersionReadsBounded(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		cs := &countStore{Store: n.db}
		c := newModule(t, cs)
		if err := c.Unseal(ctx, UnsealInput{KeyFile: n.keyFile}); err != nil {
			t.Fatal(err)
		}
		cAlice, err := c.Login(ctx, "alice", alicePIN)
		if err != nil {
			t.Fatal(err)
		}
		k := newStaleKeys(t, n)
		ct, err := n.alice.Encrypt(ctx, k.aes.ID, []byte("v1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cAlice.Decrypt(ctx, k.aes.ID, ct, nil); err != nil {
			t.Fatal(err)
		}
		sg := signWith(t, "A", n.alice, k.sign.ID, 1, "v1")
		verifies(t, "C", cAlice, k.sign.ID, sg)
		reads := func(what string, want int64, f func()) {
			t.Helper()
			before := cs.reads.Load()
			f()
			if got := cs.reads.Load() - before; got != want {
				t.Errorf("%s: %d reads of the key, want %d", what, got, want)
			}
		}
		reads("versions 0 and -1", 0, func() {
			if _, err := cAlice.Decrypt(ctx, k.aes.ID, withVersion(ct, 0), nil); !errors.Is(err, ErrWrongKeyVersion) {
				t.Errorf("version 0 ciphertext: %v", err)
			}
			if err := cAlice.Verify(ctx, k.sign.ID, -1, sg.digest, sg.sig, crypto.SHA256); !errors.Is(err, ErrWrongKeyVersion) {
				t.Errorf("version -1: %v", err)
			}
		})
		reads("three calls naming version 99", 3, func() {
			for range 3 {
				if _, err := cAlice.Decrypt(ctx, k.aes.ID, withVersion(ct, 99), nil); !errors.Is(err, ErrWrongKeyVersion) {
					t.Errorf("version 99 ciphertext: %v", err)
				}
			}
		})

		rotateOnA(t, n, 2, k.aes.ID)
		ct2, err := n.alice.Encrypt(ctx, k.aes.ID, []byte("v2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		reads("8 concurrent decryptions of a new version", 1, func() {
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if got, err := cAlice.Decrypt(ctx, k.aes.ID, ct2, nil); err != nil || string(got) != "v2" {
						t.Errorf("C decrypts version 2: %q, %v", got, err)
					}
				}()
			}
			wg.Wait()
		})
		reads("a version now cached", 0, func() {
			if _, err := cAlice.Decrypt(ctx, k.aes.ID, ct2, nil); err != nil {
				t.Error(err)
			}
		})
	})
}
