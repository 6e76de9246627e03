package hsm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestKeyHistoryRollback: someone who can write the database but not
// unseal undoes a rotation (deletes the newest version row), puts back a
// destroyed key's rows, and puts back a row from before a key was made
// non-extractable (a security review did the first: the retired version
// signed again, with no error). Each such key is refused as damaged, on a
// node that opens it afresh and on one that had it cached (at its next
// sync), and `ca hsm status` (CheckObjects) lists it; an untouched rotated
// key goes on working.
func TestKeyHistoryRollback(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		digest := sha256.Sum256([]byte("history"))
		gen := func(extractable bool) KeyInfo {
			k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Extractable: extractable})
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		rows := func(id string) []storage.HSMObject {
			rs, err := db.HSMObject(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return rs
		}
		putBack := func(r storage.HSMObject) {
			if _, err := db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ? AND version = ?`, r.ID, r.Version); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(ctx, `INSERT INTO hsm_objects (id, version, owner, label, attrs, sealed, created, uses)
				VALUES (?, ?, ?, ?, ?, ?, ?, 0)`, r.ID, r.Version, r.Owner, r.Label, r.Attrs, r.Sealed, storage.Micros(r.Created)); err != nil {
				t.Fatal(err)
			}
		}

		rotated := gen(false)
		if _, err := f.alice.RotateKey(ctx, rotated.ID); err != nil {
			t.Fatal(err)
		}
		f.alice.Sign(ctx, rotated.ID, digest[:], crypto.SHA256) // cached at version 2 on f.m
		if _, err := db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ? AND version = 2`, rotated.ID); err != nil {
			t.Fatal(err)
		}

		destroyed := gen(false)
		saved := rows(destroyed.ID)
		if err := f.alice.DestroyKey(ctx, destroyed.ID); err != nil {
			t.Fatal(err)
		}
		putBack(saved[0])

		locked := gen(true)
		saved = rows(locked.ID)
		if err := f.alice.SetNonExtractable(ctx, locked.ID); err != nil {
			t.Fatal(err)
		}
		putBack(saved[0])

		// The entry about the key edited along with the rows (a second
		// review hid the rotation by editing its details, and a destroy by
		// adding a space to its action): the entry no longer verifies.
		edited := gen(false)
		if _, err := f.alice.RotateKey(ctx, edited.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ? AND version = 2`, edited.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `UPDATE hsm_audit SET details = 'version=1 previous=1' WHERE object = ? AND action = 'key.rotate'`, edited.ID); err != nil {
			t.Fatal(err)
		}
		respaced := gen(false)
		saved = rows(respaced.ID)
		if err := f.alice.DestroyKey(ctx, respaced.ID); err != nil {
			t.Fatal(err)
		}
		putBack(saved[0])
		if _, err := db.Exec(ctx, `UPDATE hsm_audit SET action = 'key.destroy ' WHERE object = ? AND action = 'key.destroy'`, respaced.ID); err != nil {
			t.Fatal(err)
		}

		// The entry deleted along with the row: a node that holds the key
		// refuses a store that went below its version. (A node opening it
		// afresh cannot tell; the gap in the log shows in audit verify.)
		hidden := gen(false)
		if _, err := f.alice.RotateKey(ctx, hidden.ID); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`DELETE FROM hsm_objects WHERE id = ? AND version = 2`, `DELETE FROM hsm_audit WHERE object = ? AND action = 'key.rotate'`} {
			if _, err := db.Exec(ctx, q, hidden.ID); err != nil {
				t.Fatal(err)
			}
		}

		intact := gen(false)
		if _, err := f.alice.RotateKey(ctx, intact.ID); err != nil {
			t.Fatal(err)
		}

		pub, _ := rsa.GenerateKey(rand.Reader, 2048)
		// A node that held version 2 says so first; a fresh one finds the
		// audit log's word against the store.
		check := func(t *testing.T, s *Session, held bool) {
			t.Helper()
			wants := map[string]string{
				rotated.ID:   "the audit log records version 2",
				destroyed.ID: "was destroyed",
				edited.ID:    "does not verify",
				respaced.ID:  "does not verify",
			}
			if held {
				wants[rotated.ID], wants[edited.ID] = "below version 2", "below version 2"
			}
			for id, want := range wants {
				if _, err := s.Sign(ctx, id, digest[:], crypto.SHA256); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
					t.Errorf("signing with key %s: %v, want ErrCorrupt saying %q", id, err, want)
				}
			}
			if _, _, err := s.ExportWrappedTo(ctx, locked.ID, &pub.PublicKey); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "made non-extractable") {
				t.Errorf("exporting the key put back extractable: %v", err)
			}
			if _, err := s.Sign(ctx, intact.ID, digest[:], crypto.SHA256); err != nil {
				t.Errorf("the untouched key: %v", err)
			}
		}
		t.Run("opened afresh", func(t *testing.T) {
			m := f.reopen(t)
			s, err := m.Login(ctx, "alice", alicePIN)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s, false)
			damaged, err := m.CheckObjects(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, d := range damaged {
				got[d.ID] = true
			}
			if len(damaged) != 5 || !got[rotated.ID] || !got[destroyed.ID] || !got[locked.ID] || !got[edited.ID] || !got[respaced.ID] {
				t.Errorf("CheckObjects lists %+v, want the five keys changed outside the HSM", damaged)
			}
		})
		t.Run("cached, at the next sync", func(t *testing.T) {
			if _, err := f.m.SyncKeys(ctx); err != nil {
				t.Fatal(err)
			}
			check(t, f.alice, true)
			if _, err := f.alice.Sign(ctx, hidden.ID, digest[:], crypto.SHA256); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "below version 2") {
				t.Errorf("signing with the key whose rotation and its entry were deleted: %v", err)
			}
			if rep, err := f.m.VerifyAudit(ctx); err != nil || rep.FirstBad == 0 {
				t.Errorf("audit verify after entries were edited and deleted: %+v %v", rep, err)
			}
		})
	})
}

// TestKeyHistoryPreviousReleaseEntries: during a rolling upgrade a node of
// the previous release appends entries with no MAC (here: a rotation's
// entry with its MAC removed, its hash intact). An upgrade review found
// every key such a node rotated refused for good on the new nodes, the
// OCSP responder's included. The key goes on working, afresh and cached;
// what the entry records still holds (the rotation's rows deleted too is
// refused); an entry whose hash no longer matches is still refused; and
// audit verify lists the entry as not authenticated.
func TestKeyHistoryPreviousReleaseEntries(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		digest := sha256.Sum256([]byte("rolling upgrade"))
		rotatedByOld := func() string {
			t.Helper()
			k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.alice.RotateKey(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(ctx, `UPDATE hsm_audit SET mac = ? WHERE object = ? AND action = 'key.rotate'`, []byte{}, k.ID); err != nil {
				t.Fatal(err)
			}
			return k.ID
		}
		kept, rolledBack, edited := rotatedByOld(), rotatedByOld(), rotatedByOld()
		if _, err := db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ? AND version = 2`, rolledBack); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `UPDATE hsm_audit SET details = 'version=9' WHERE object = ? AND action = 'key.rotate'`, edited); err != nil {
			t.Fatal(err)
		}
		// A node that has a key cached checks its history again when its
		// rows change (edited's did not).
		check := func(t *testing.T, s *Session, afresh bool) {
			t.Helper()
			if _, err := s.Sign(ctx, kept, digest[:], crypto.SHA256); err != nil {
				t.Errorf("a key rotated by a node of the previous release: %v", err)
			}
			// What the MAC-less entry records is held, and the refusal says
			// the entry carries no MAC (a forged one is no reason to restore
			// rows); a node that held version 2 says so first.
			wants := map[string]string{rolledBack: "versions were removed"}
			if afresh {
				wants[edited] = "does not verify"
				wants[rolledBack] = "records version 2 (entry #"
			}
			for id, want := range wants {
				if _, err := s.Sign(ctx, id, digest[:], crypto.SHA256); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
					t.Errorf("signing with key %s: %v, want ErrCorrupt saying %q", id, err, want)
				}
			}
		}
		t.Run("opened afresh", func(t *testing.T) {
			m := f.reopen(t)
			s, err := m.Login(ctx, "alice", alicePIN)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s, true)
			if _, err := s.Sign(ctx, rolledBack, digest[:], crypto.SHA256); err == nil || !strings.Contains(err.Error(), "carries no MAC") {
				t.Errorf("the refusal does not say its entry carries no MAC: %v", err)
			}
			damaged, err := m.CheckObjects(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range damaged {
				if d.ID == kept {
					t.Errorf("CheckObjects lists the key rotated by the previous release: %+v", d)
				}
			}
		})
		t.Run("cached, at the next sync", func(t *testing.T) {
			if _, err := f.m.SyncKeys(ctx); err != nil {
				t.Fatal(err)
			}
			check(t, f.alice, false)
		})
		rep, err := f.m.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Unauthenticated["key.rotate"] < 2 {
			t.Errorf("audit verify: %+v, want the MAC-less rotations listed as not authenticated", rep)
		}
	})
}

// TestDestroyDamaged: a key refused as damaged opens for nobody, so its
// owner cannot destroy it (an upgrade review found `ca hsm status` telling
// the operator to destroy such keys with no way to). An officer destroys
// it; its rows put back after that are refused as destroyed; an intact key
// and a user's session are refused.
func TestDestroyDamaged(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "rolled-back"})
		if err != nil {
			t.Fatal(err)
		}
		saved, err := db.HSMObject(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.alice.RotateKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ? AND version = 2`, k.ID); err != nil {
			t.Fatal(err)
		}
		intact, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256})
		if err != nil {
			t.Fatal(err)
		}
		// A node that opens the key afresh (this one still holds version 2).
		m := f.reopen(t)
		alice, err := m.Login(ctx, "alice", alicePIN)
		if err != nil {
			t.Fatal(err)
		}
		officer, err := m.Login(ctx, "co", officerPIN)
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.DestroyKey(ctx, k.ID); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("the owner destroying the damaged key: %v, want ErrCorrupt", err)
		}
		if _, err := alice.DestroyDamaged(ctx, k.ID, nil); !errors.Is(err, ErrForbidden) {
			t.Fatalf("a crypto user: %v, want ErrForbidden", err)
		}
		if _, err := officer.DestroyDamaged(ctx, intact.ID, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("an intact key: %v, want ErrInvalid", err)
		}
		// The caller sees the key's creation as the authenticated log has
		// it, not as its row (which anyone who writes the database can
		// relabel), and may refuse.
		if _, err := db.Exec(ctx, `UPDATE hsm_objects SET label = 'harmless', owner = 'nobody' WHERE id = ?`, k.ID); err != nil {
			t.Fatal(err)
		}
		errKeep := errors.New("kept")
		var seen DamagedKey
		if _, err := officer.DestroyDamaged(ctx, k.ID, func(d DamagedKey) error { seen = d; return errKeep }); !errors.Is(err, errKeep) {
			t.Fatalf("DestroyDamaged refused by its caller: %v", err)
		}
		if c := seen.Created; !c.Verified || c.Label != "rolled-back" || c.By != "alice" || seen.Label != "harmless" {
			t.Fatalf("the key's creation: %+v (row label %q), want rolled-back by alice, verified", c, seen.Label)
		}
		if rows, _ := db.HSMObject(ctx, k.ID); len(rows) == 0 {
			t.Fatal("a refused DestroyDamaged destroyed the key")
		}
		d, err := officer.DestroyDamaged(ctx, k.ID, nil)
		if err != nil || d.Created.Label != "rolled-back" {
			t.Fatalf("DestroyDamaged: %+v, %v", d, err)
		}
		if damaged, err := m.CheckObjects(ctx); err != nil || len(damaged) != 0 {
			t.Fatalf("after the destroy: %+v, %v", damaged, err)
		}
		if rows, _ := db.HSMObject(ctx, k.ID); len(rows) != 0 {
			t.Fatalf("%d rows left", len(rows))
		}
		if _, err := db.Exec(ctx, `INSERT INTO hsm_objects (id, version, owner, label, attrs, sealed, created, uses)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0)`, saved[0].ID, saved[0].Version, saved[0].Owner, saved[0].Label, saved[0].Attrs, saved[0].Sealed, storage.Micros(saved[0].Created)); err != nil {
			t.Fatal(err)
		}
		damaged, err := m.CheckObjects(ctx)
		if err != nil || len(damaged) != 1 || damaged[0].ID != k.ID {
			t.Fatalf("its rows put back: %+v, %v", damaged, err)
		}
	})
}
