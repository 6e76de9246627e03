package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestResetWithUnseal: a user whose record was altered outside the HSM
// cannot log in, and one that owns keys cannot be deleted and re-created.
// The unseal holders reset it: a new PIN, the role they name, its lockout
// cleared, its keys kept. Wrong material, an unknown user, an unknown role
// or a weak PIN change nothing.
func TestResetWithUnseal(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		key, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256})
		if err != nil {
			t.Fatal(err)
		}
		const malloryPIN, newPIN = "mallory-pin-1", "alice-new-pin-1"
		malloryHash, err := hashPIN(malloryPIN)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, `UPDATE hsm_users SET pin_hash = ? WHERE name = 'alice'`, malloryHash)
		_, err = f.m.Login(ctx, "alice", malloryPIN)
		refusedAsTampered(t, db, err, "alice", "login")
		mustExec(t, db, `UPDATE hsm_users SET failures = 5, locked = 1 WHERE name = 'alice'`) // and locked

		wrong := filepath.Join(t.TempDir(), "other.key")
		if err := os.WriteFile(wrong, make([]byte, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		right := UnsealInput{KeyFile: f.keyFile}
		for _, c := range []struct {
			name, user string
			role       Role
			pin        string
			in         UnsealInput
			want       error
		}{
			{"wrong material", "alice", RoleUser, newPIN, UnsealInput{KeyFile: wrong}, ErrBadUnseal},
			{"unknown user", "nobody", RoleUser, newPIN, right, ErrNotFound},
			{"unknown role", "alice", Role("root"), newPIN, right, ErrInvalid},
			{"weak PIN", "alice", RoleUser, "aaaaaaaa", right, ErrInvalid},
		} {
			if _, _, err := f.m.ResetWithUnseal(ctx, c.user, c.role, c.pin, c.in); !errors.Is(err, c.want) {
				t.Fatalf("%s: %v, want %v", c.name, err, c.want)
			}
			if u, err := db.HSMUser(ctx, "alice"); err != nil || u.PINHash != malloryHash {
				t.Fatalf("%s changed alice's record: %v", c.name, err)
			}
		}

		if was, _, err := f.m.ResetWithUnseal(ctx, "alice", RoleUser, newPIN, right); err != nil || was != RoleUser {
			t.Fatalf("reset: %v (the record stated role %q)", err, was)
		}
		e := lastAudit(t, db)
		if e.Action != "user.reset" || e.Object != "alice" || !strings.Contains(e.Details, "by=unseal-holders") ||
			!strings.Contains(e.Details, "role=user") || len(e.MAC) == 0 {
			t.Fatalf("audit after the reset: %+v", e)
		}
		if u, err := db.HSMUser(ctx, "alice"); err != nil || u.Failures != 0 || u.Locked {
			t.Fatalf("after the reset: %+v, %v", u, err)
		}
		if _, err := f.m.Login(ctx, "alice", malloryPIN); !errors.Is(err, ErrBadPIN) {
			t.Fatalf("the planted PIN after the reset: %v", err)
		}
		// Another process, nothing cached, takes the new PIN, and the
		// user still has its key.
		s, err := f.reopen(t).Login(ctx, "alice", newPIN)
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("still alice's key"))
		if _, err := s.Sign(ctx, key.ID, d[:], crypto.SHA256); err != nil {
			t.Fatalf("alice's key after the reset: %v", err)
		}
		us, err := f.officer.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Tampered {
				t.Fatalf("%s is still marked tampered after the reset", u.Name)
			}
		}
	})
}
