package hsm

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

const (
	officerPIN = "officer-pin-1"
	alicePIN   = "alice-pin-1"
	bobPIN     = "bob-pin-1"
)

func newModule(t testing.TB, db Store) *Module {
	t.Helper()
	m, err := New(context.Background(), Options{Store: db, KeySyncInterval: -1}) // tests sync by hand
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// fixture is an unsealed key-file module with an officer and two crypto
// users, alice and bob.
type fixture struct {
	db      *storage.DB
	m       *Module
	keyFile string
	officer *Session
	alice   *Session
	bob     *Session
}

func setup(t testing.TB, db *storage.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{db: db, m: newModule(t, db), keyFile: filepath.Join(t.TempDir(), "unseal.key")}
	if _, err := f.m.Initialize(ctx, InitOptions{Method: MethodKeyFile, KeyFile: f.keyFile, OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	f.officer = f.login(t, "co", officerPIN)
	for _, u := range []struct{ n, p string }{{"alice", alicePIN}, {"bob", bobPIN}} {
		if err := f.officer.CreateUser(ctx, u.n, RoleUser, u.p); err != nil {
			t.Fatalf("CreateUser %s: %v", u.n, err)
		}
	}
	f.alice = f.login(t, "alice", alicePIN)
	f.bob = f.login(t, "bob", bobPIN)
	return f
}

func (f *fixture) login(t testing.TB, user, pin string) *Session {
	t.Helper()
	s, err := f.m.Login(context.Background(), user, pin)
	if err != nil {
		t.Fatalf("Login %s: %v", user, err)
	}
	return s
}

// reopen returns a fresh module over the same store, unsealed with the key
// file: nothing cached survives.
func (f *fixture) reopen(t testing.TB) *Module {
	t.Helper()
	m := newModule(t, f.db)
	if err := m.Unseal(context.Background(), UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	return m
}

func sqliteDB(t testing.TB) *storage.DB {
	db, _ := storagetest.SQLite(t)
	return db
}
