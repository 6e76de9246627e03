package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func TestKATsPass(t *testing.T) {
	m := &Module{}
	if err := m.runSelfTests(); err != nil {
		t.Fatal(err)
	}
}

// TestBrokenKATKeepsModuleUnusable corrupts each vector in turn: unseal
// fails naming the test, and every operation is refused.
func TestBrokenKATKeepsModuleUnusable(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "k"})
	if err != nil {
		t.Fatal(err)
	}
	f.m.Close(ctx)
	for _, kt := range kats() {
		t.Run(kt.name, func(t *testing.T) {
			m := newModule(t, f.db)
			m.katCorrupt = kt.name
			err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile})
			if !errors.Is(err, ErrSelfTestFailed) || !strings.Contains(err.Error(), kt.name) {
				t.Fatalf("Unseal = %v, want ErrSelfTestFailed naming %s", err, kt.name)
			}
			if _, err := m.Login(ctx, "alice", alicePIN); !errors.Is(err, ErrSelfTestFailed) || !strings.Contains(err.Error(), kt.name) {
				t.Fatalf("Login = %v", err)
			}
			st, _ := m.Status(ctx)
			if !strings.Contains(st.Failure, kt.name) || !st.Sealed {
				t.Fatalf("Status = %+v", st)
			}
			// Still broken on a second try.
			if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); !errors.Is(err, ErrSelfTestFailed) {
				t.Fatalf("second Unseal = %v", err)
			}
		})
	}
	// A module whose self-tests break after sessions exist refuses them too.
	m := newModule(t, f.db)
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	s, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.katCorrupt = "ecdsa-p256"
	m.runSelfTests()
	m.mu.Unlock()
	d := sha256.Sum256([]byte("x"))
	if _, err := s.Sign(ctx, k.ID, d[:], crypto.SHA256); !errors.Is(err, ErrSelfTestFailed) {
		t.Fatalf("Sign after failed self-test = %v", err)
	}
}
