package hsm

import (
	"context"
	"testing"
)

// TestUserStamp: a node whose key service user could not log in watches
// this stamp and tries one more login when it changes. It changes with
// everything that decides whether a login can succeed — unlock, new PIN,
// re-created user, other role — and not with a failed login below the
// lockout: a node with a wrong PIN would otherwise answer its own failure
// with another attempt until the user locked. It needs no session, and a
// sealed module reads the same stamp.
func TestUserStamp(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	sealed := newModule(t, f.db)
	stamp := func(t *testing.T) UserStamp {
		t.Helper()
		s, err := f.m.UserStamp(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if o, err := sealed.UserStamp(ctx, "alice"); err != nil || o != s {
			t.Fatalf("a sealed module's stamp: %x, %v; want %x", o, err, s)
		}
		return s
	}
	wrongLogin := func(t *testing.T) {
		if _, err := f.m.Login(ctx, "alice", "not-alices-pin"); err == nil {
			t.Fatal("a wrong PIN logged in")
		}
	}
	steps := []struct {
		name    string
		do      func(t *testing.T)
		changes bool
	}{
		{"nothing", func(*testing.T) {}, false},
		{"failed login", wrongLogin, false},
		{"two more failed logins", func(t *testing.T) {
			for range 2 {
				wrongLogin(t)
			}
		}, false},
		// One try left: a node's stored PIN is refused from here
		// (LoginStored), so the key service's watch must see it end.
		{"the fourth: one try left", func(t *testing.T) {
			wrongLogin(t)
			if u, _ := f.db.HSMUser(ctx, "alice"); u.Failures != 4 || u.Locked {
				t.Fatalf("after four wrong PINs: %d failures, locked %v", u.Failures, u.Locked)
			}
		}, true},
		{"a correct login clears it", func(t *testing.T) {
			s, err := f.m.Login(ctx, "alice", alicePIN)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, true},
		{"four failed logins again", func(t *testing.T) {
			for range 4 {
				wrongLogin(t)
			}
		}, true},
		{"lockout", wrongLogin, true},
		{"login while locked", wrongLogin, false},
		{"unlock", func(t *testing.T) {
			if err := f.officer.UnlockUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"PIN change", func(t *testing.T) {
			if err := f.alice.ChangePIN(ctx, alicePIN, "alice-pin-2"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"role change", func(t *testing.T) {
			u, err := f.db.HSMUser(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			u.Role = string(RoleAuditor)
			if _, err := f.db.Exec(ctx, `UPDATE hsm_users SET role = ? WHERE name = ?`, u.Role, u.Name); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"delete", func(t *testing.T) {
			if err := f.officer.DeleteUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"unknown user's failed login", wrongLogin, false},
		{"re-create with the same role and PIN", func(t *testing.T) {
			if err := f.officer.CreateUser(ctx, "alice", RoleAuditor, "alice-pin-2"); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	prev := stamp(t)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			now := stamp(t)
			if (now != prev) != st.changes {
				t.Fatalf("stamp changed: %v, want %v", now != prev, st.changes)
			}
			prev = now
		})
	}
}
