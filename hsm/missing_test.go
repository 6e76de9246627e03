package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestMissingKeysAreReported: a review deleted every row of a key in the
// database and nothing noticed: the key answered 404 and `ca hsm status`
// said the keystore was intact. A key the authenticated audit log records
// as made and not destroyed, with no rows, is listed as missing by
// CheckObjects (and counted); a key its owner destroyed is not; the
// officer's DestroyDamaged records the loss, which ends the report.
func TestMissingKeysAreReported(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	ids := map[string]string{}
	for _, label := range []string{"kept", "gone", "destroyed"} {
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: label})
		if err != nil {
			t.Fatal(err)
		}
		ids[label] = k.ID
	}
	if err := f.alice.DestroyKey(ctx, ids["destroyed"]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ?`, ids["gone"]); err != nil {
		t.Fatal(err)
	}
	forgetKey(f.m.state.Load(), ids["gone"]) // as a node that has not opened it since
	d, err := f.m.CheckObjects(ctx)
	if err != nil || len(d) != 1 {
		t.Fatalf("CheckObjects after a key's rows were deleted: %+v %v", d, err)
	}
	g := d[0]
	if g.ID != ids["gone"] || !g.Missing || !g.Created.Verified || g.Created.Label != "gone" || g.Created.By != "alice" ||
		!strings.Contains(g.Reason, "deleted outside the HSM") {
		t.Fatalf("the missing key as listed: %+v", g)
	}
	if _, err := f.alice.FindKey(ctx, "gone"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "deleted outside the HSM") {
		t.Errorf("FindKey of the missing key as its creator: %v", err)
	}
	if _, err := f.bob.FindKey(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindKey of alice's missing key as bob: %v", err)
	}
	if _, err := f.alice.FindKey(ctx, "destroyed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindKey of a destroyed key: %v", err)
	}
	// Asking for the missing key by id (anyone may, through the JWKS)
	// does not clear it from the count.
	d0 := sha256.Sum256([]byte("x"))
	if _, err := f.alice.Sign(ctx, g.ID, d0[:], crypto.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("signing with the missing key: %v", err)
	}
	if n := f.m.DamagedCount(); n != 1 {
		t.Errorf("DamagedCount: %d, want 1", n)
	}
	if _, err := f.officer.DestroyDamaged(ctx, g.ID, nil); err != nil {
		t.Fatalf("recording the missing key's loss: %v", err)
	}
	if d, err := f.m.CheckObjects(ctx); err != nil || len(d) != 0 {
		t.Fatalf("CheckObjects after the loss was recorded: %+v %v", d, err)
	}
}

// destroyingStore destroys a key when the rows are read, as another node
// might between CheckObjects' read of the history and of the rows.
type destroyingStore struct {
	Store
	destroy func()
}

func (s *destroyingStore) HSMObjects(ctx context.Context) ([]storage.HSMObject, error) {
	if s.destroy != nil {
		s.destroy()
		s.destroy = nil
	}
	return s.Store.HSMObjects(ctx)
}

// TestKeyDestroyedDuringCheckIsNotMissing: a key destroyed after the check
// read the history but before it read the rows has neither rows nor, in
// what was read, a destroy; the check reads its history again.
func TestKeyDestroyedDuringCheckIsNotMissing(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	ds := &destroyingStore{Store: f.db}
	m := newModule(t, ds)
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	alice, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	k, err := alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "short-lived"})
	if err != nil {
		t.Fatal(err)
	}
	ds.destroy = func() {
		if err := f.alice.DestroyKey(ctx, k.ID); err != nil {
			t.Error(err)
		}
	}
	if d, err := m.CheckObjects(ctx); err != nil || len(d) != 0 {
		t.Fatalf("CheckObjects while a key was destroyed: %+v %v", d, err)
	}
}

// TestMissingUsers: a user's row deleted in the database, the first
// officer's included, is listed as missing with the role its authenticated
// creation entry gives; a user the officer deleted is not. The unseal
// holders re-create a missing user, which gets its keys back (they are
// owned by name) and logs in with its new PIN; then nothing is missing.
func TestMissingUsers(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		key, err := f.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "alice-data"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.officer.CreateUser(ctx, "carol", RoleAuditor, "carol-pin-1234"); err != nil {
			t.Fatal(err)
		}
		if err := f.officer.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, `DELETE FROM hsm_users WHERE name IN ('alice', 'carol', 'co')`)
		missing, err := f.m.MissingUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range missing {
			got = append(got, u.Name+":"+string(u.Role))
		}
		if strings.Join(got, " ") != "alice:user carol:auditor co:officer" {
			t.Fatalf("MissingUsers: %v", got)
		}
		// A stored PIN's login (the CA's own, `ca serve`) says why; an
		// interactive one says no more than for a name never made.
		if _, err := f.m.LoginStored(ctx, "alice", alicePIN); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "deleted outside the HSM") {
			t.Fatalf("stored-PIN login of a missing user: %v", err)
		}
		if _, err := f.m.Login(ctx, "alice", alicePIN); !errors.Is(err, ErrBadPIN) || strings.Contains(err.Error(), "deleted") {
			t.Fatalf("login of a missing user: %v", err)
		}
		const newPIN = "alice-new-pin-1"
		was, recreated, err := f.m.ResetWithUnseal(ctx, "alice", RoleUser, newPIN, UnsealInput{KeyFile: f.keyFile})
		if err != nil || !recreated || was != RoleUser {
			t.Fatalf("re-creating alice: %v recreated=%v was=%q", err, recreated, was)
		}
		if _, _, err := f.m.ResetWithUnseal(ctx, "bob", RoleUser, newPIN, UnsealInput{KeyFile: f.keyFile}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("re-creating bob, whom the officer deleted: %v", err)
		}
		if _, _, err := f.m.ResetWithUnseal(ctx, "co", RoleOfficer, officerPIN, UnsealInput{KeyFile: f.keyFile}); err != nil {
			t.Fatal(err)
		}
		alice := f.login(t, "alice", newPIN)
		if _, err := alice.Encrypt(ctx, key.ID, []byte("x"), nil); err != nil {
			t.Fatalf("alice, re-created, with her key: %v", err)
		}
		users, err := f.login(t, "co", officerPIN).ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		for _, u := range users {
			got = append(got, fmt.Sprintf("%s:%v", u.Name, u.Missing))
		}
		if strings.Join(got, " ") != "alice:false co:false carol:true" {
			t.Fatalf("ListUsers after two were re-created: %v", got)
		}
	})
}

// TestRetypedRowsAreFound: SQLite keeps a value of any type in any column.
// A review rewrote an audit entry's object, and a user's name, as BLOBs:
// they read back as the same strings (every hash and MAC verifies) but no
// lookup by name found them, which hid a deleted user from MissingUsers
// and a key's rotation from its history check. The walks over every row
// refuse such rows, so `ca hsm status` and `ca hsm audit verify` say so.
func TestRetypedRowsAreFound(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	f := setup(t, db)
	mustExec(t, db, `DELETE FROM hsm_users WHERE name = 'alice'`)
	mustExec(t, db, `UPDATE hsm_audit SET object = CAST(object AS BLOB) WHERE object = 'alice'`)
	if m, err := f.m.MissingUsers(ctx); err == nil {
		t.Fatalf("MissingUsers with alice's entries retyped: %v, no error", m)
	}
	rep, err := f.m.VerifyAudit(ctx)
	if err != nil || rep.FirstBad == 0 || !strings.Contains(rep.Problem, "another type than text") {
		t.Fatalf("VerifyAudit with an entry retyped: %+v %v", rep, err)
	}
	if _, err := f.m.CheckObjects(ctx); err == nil {
		t.Fatal("CheckObjects read the retyped entry without a word")
	}

	f = setup(t, sqliteDB(t))
	k, err := f.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "k"})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `UPDATE hsm_objects SET id = CAST(id AS BLOB) WHERE id = ?`, k.ID)
	if _, err := f.m.CheckObjects(ctx); err == nil || !strings.Contains(err.Error(), "another type than text") {
		t.Fatalf("CheckObjects with a key's id retyped: %v", err)
	}
	mustExec(t, f.db, `UPDATE hsm_users SET name = CAST(name AS BLOB) WHERE name = 'bob'`)
	if _, err := f.officer.ListUsers(ctx); err == nil || !strings.Contains(err.Error(), "another type than text") {
		t.Fatalf("ListUsers with bob's name retyped: %v", err)
	}
}

// appendUnauthenticated appends a well-linked audit entry with no MAC and
// moves the head to it, as someone who can write the database but not
// unseal can.
func appendUnauthenticated(t *testing.T, f *fixture, action, object string) {
	t.Helper()
	ctx := context.Background()
	seq, prev, err := f.db.HSMAuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := storage.HSMAuditEntry{Seq: seq + 1, At: time.Now().UTC().Truncate(time.Microsecond), Action: action, Object: object, PrevHash: prev}
	e.Hash = auditHash(e)
	mustExec(t, f.db, `INSERT INTO hsm_audit (seq, at, actor, action, object, details, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, storage.Micros(e.At), e.Actor, e.Action, e.Object, e.Details, e.PrevHash, e.Hash, []byte{})
	mustExec(t, f.db, `UPDATE hsm_audit_head SET seq = ?, hash = ?`, e.Seq, e.Hash)
}

// TestForgedDestroyHidesNothing: a review deleted a key's rows and a
// user's, then appended a key.destroy and a user.delete entry with no MAC;
// the checks took them at their word. A destroy or delete the HSM does not
// vouch for leaves the key or user missing, saying why.
func TestForgedDestroyHidesNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "data"})
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, `DELETE FROM hsm_objects WHERE id = ?`, k.ID)
		mustExec(t, db, `DELETE FROM hsm_users WHERE name = 'bob'`)
		appendUnauthenticated(t, f, actionDestroy, k.ID)
		appendUnauthenticated(t, f, "user.delete", "bob")
		d, err := f.m.CheckObjects(ctx)
		if err != nil || len(d) != 1 || d[0].ID != k.ID || !d[0].Missing || !strings.Contains(d[0].Reason, "carries no MAC") {
			t.Fatalf("CheckObjects after a forged destroy: %+v %v", d, err)
		}
		mu, err := f.m.MissingUsers(ctx)
		if err != nil || len(mu) != 1 || mu[0].Name != "bob" || mu[0].UnvouchedDelete == 0 {
			t.Fatalf("MissingUsers after a forged delete: %+v %v", mu, err)
		}
	})
}

// TestMissingUserNotCreatedByOfficer: a review deleted the CA's user row
// and had an officer create a user of that name, which then owned the CA's
// keys with a PIN the officer chose, with no unseal holder involved. A
// missing user, or a name that still owns keys, is refused; the unseal
// holders re-create it.
func TestMissingUserNotCreatedByOfficer(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	if _, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "alice-ca"}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `DELETE FROM hsm_users WHERE name = 'alice'`)
	err := f.officer.CreateUser(ctx, "alice", RoleUser, "officers-pin-1")
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "deleted outside the HSM") {
		t.Fatalf("an officer creating the missing alice: %v", err)
	}
	// A keystore whose log does not say (made before it was authenticated):
	// keys owned by the name refuse it as well.
	mustExec(t, f.db, `UPDATE hsm_objects SET owner = 'carol' WHERE owner = 'bob' OR label = 'alice-ca'`)
	if err := f.officer.CreateUser(ctx, "carol", RoleUser, "carols-pin-123"); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "owned by that name") {
		t.Fatalf("an officer creating a user whose name owns keys: %v", err)
	}
	if err := f.officer.CreateUser(ctx, "dave", RoleUser, "daves-pin-1234"); err != nil {
		t.Fatalf("a new user: %v", err)
	}
}
