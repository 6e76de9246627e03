package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestSessionEndsWithItsUser: a review saw a running server's key service
// go on creating keys owned by a user the CLI had deleted. A user deleted
// or given another role — here or by another process sharing the
// keystore — loses its sessions, and a key is never created for an owner
// that no longer exists.
func TestSessionEndsWithItsUser(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	spec := KeySpec{Type: P256}
	ended := func(t *testing.T, s *Session, why string) {
		t.Helper()
		_, err := s.GenerateKey(ctx, spec)
		if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), why) {
			t.Fatalf("GenerateKey after the user was %s: %v", why, err)
		}
	}

	t.Run("deleted here", func(t *testing.T) {
		carol := f.newUser(t, "carol")
		if err := f.officer.DeleteUser(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
		ended(t, carol, "deleted")
	})

	// Another process (the CLI beside a running server) shares the keystore.
	other := f.reopen(t)
	otherOfficer, err := other.Login(ctx, "co", officerPIN)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("deleted by another process", func(t *testing.T) {
		dave := f.newUser(t, "dave")
		k, err := dave.GenerateKey(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := dave.DestroyKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if err := otherOfficer.DeleteUser(ctx, "dave"); err != nil {
			t.Fatal(err)
		}
		// Before this module reads the users again, the keystore itself
		// refuses a key for an owner that is gone.
		ended(t, dave, "deleted")
		objs, _ := f.db.HSMObjects(ctx)
		for _, o := range objs {
			if o.Owner == "dave" {
				t.Fatalf("key %s created for deleted user dave", o.ID)
			}
		}
		if err := f.m.SyncUsers(ctx); err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		if _, err := dave.Sign(ctx, k.ID, d[:], crypto.SHA256); !errors.Is(err, ErrNotLoggedIn) {
			t.Fatalf("Sign after the user was deleted: %v", err)
		}
	})
	// A lockout stops PIN guessing; it does not end sessions opened with
	// the right PIN: wrong PINs typed anywhere (a second node restarting
	// with a mistyped PIN) would otherwise stop the running CA everywhere.
	t.Run("locked by another process", func(t *testing.T) {
		erin := f.newUser(t, "erin")
		for range maxFailed {
			other.Login(ctx, "erin", "wrong-pin-1")
		}
		if err := f.m.SyncUsers(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := erin.GenerateKey(ctx, spec); err != nil {
			t.Fatalf("an open session of a user locked since: %v", err)
		}
		if _, err := f.m.Login(ctx, "erin", "erin-pin-1"); err == nil {
			t.Fatal("a locked user logged in")
		}
	})
	t.Run("role changed in the keystore", func(t *testing.T) {
		frank := f.newUser(t, "frank")
		u, err := f.db.HSMUser(ctx, "frank")
		if err != nil {
			t.Fatal(err)
		}
		u.Role = string(RoleAuditor)
		if _, err := f.db.Exec(ctx, `UPDATE hsm_users SET role = ? WHERE name = ?`, u.Role, u.Name); err != nil {
			t.Fatal(err)
		}
		if err := f.m.SyncUsers(ctx); err != nil {
			t.Fatal(err)
		}
		// No HSM call changes a role: only a database writer does, and the
		// row then no longer verifies (usermac.go).
		ended(t, frank, "altered outside the HSM")
	})
	t.Run("deleted and re-created", func(t *testing.T) {
		gina := f.newUser(t, "gina")
		if err := otherOfficer.DeleteUser(ctx, "gina"); err != nil {
			t.Fatal(err)
		}
		if err := otherOfficer.CreateUser(ctx, "gina", RoleUser, "gina-pin-2"); err != nil {
			t.Fatal(err)
		}
		if err := f.m.SyncUsers(ctx); err != nil {
			t.Fatal(err)
		}
		ended(t, gina, "deleted")
		if _, err := f.login(t, "gina", "gina-pin-2").GenerateKey(ctx, spec); err != nil {
			t.Fatalf("the new gina: %v", err)
		}
	})
	// Sessions of users nobody touched go on working.
	if _, err := f.alice.GenerateKey(ctx, spec); err != nil {
		t.Fatalf("alice: %v", err)
	}
}

// newUser creates a crypto user and logs it in.
func (f *fixture) newUser(t *testing.T, name string) *Session {
	t.Helper()
	if err := f.officer.CreateUser(context.Background(), name, RoleUser, name+"-pin-1"); err != nil {
		t.Fatal(err)
	}
	return f.login(t, name, name+"-pin-1")
}

// TestTamperedUserLogged: a running node learns at its user sync that a
// record was altered outside the HSM and logs it once, naming the user (a
// verification saw a node whose CA user was altered say nothing until its
// next signature failed).
func TestTamperedUserLogged(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	f := setup(t, db)
	var logs bytes.Buffer
	m, err := New(ctx, Options{Store: db, KeySyncInterval: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "altered outside the HSM") {
		t.Fatalf("logged before anything was altered:\n%s", logs.String())
	}
	mustExec(t, db, `UPDATE hsm_users SET role = 'officer' WHERE name = 'alice'`)
	for range 2 {
		if err := m.SyncUsers(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "altered outside the HSM"); n != 1 || !strings.Contains(logs.String(), "user=alice") {
		t.Fatalf("want one error naming alice, got %d:\n%s", n, logs.String())
	}
}
