package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestHSMInsertAndRequire checks the writes a key rotation relies on: an
// inserted version never replaces a stored one, and a change computed from a
// stale head, or creating a taken label, writes nothing.
func TestHSMInsertAndRequire(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		entry := func(prev int64, h []byte) storage.HSMAuditEntry {
			return storage.HSMAuditEntry{Seq: prev + 1, At: time.Now(), Action: "x", PrevHash: append([]byte{}, h...), Hash: []byte{byte(prev + 1)}}
		}
		obj := func(v int, attrs, sealed string) storage.HSMObject {
			return storage.HSMObject{ID: "k", Version: v, Owner: "a", Label: "l", Attrs: []byte(attrs), Sealed: []byte(sealed), Created: time.Now()}
		}
		apply := func(ch storage.HSMChange) error {
			ch.Audit = entry
			return db.ApplyHSM(ctx, ch)
		}
		conflict := func(what string, err, want error) {
			t.Helper()
			if !errors.Is(err, want) || core.KindOf(err) != core.KindConflict {
				t.Fatalf("%s: got %v, want %v (a conflict)", what, err, want)
			}
		}
		if err := apply(storage.HSMChange{NewUsers: []storage.HSMUser{{Name: "a", Role: "user", PINHash: "x", Created: time.Now()}}}); err != nil {
			t.Fatal(err)
		}
		if err := apply(storage.HSMChange{InsertObjects: []storage.HSMObject{obj(1, "a1", "v1")}, RequireUsers: []string{"a"},
			RequireFreeLabels: []storage.HSMLabel{{Owner: "a", Label: "l"}}}); err != nil {
			t.Fatal(err)
		}
		conflict("second key with one label", apply(storage.HSMChange{
			InsertObjects:     []storage.HSMObject{{ID: "k2", Version: 1, Owner: "a", Label: "l", Attrs: []byte("x"), Sealed: []byte("x")}},
			RequireFreeLabels: []storage.HSMLabel{{Owner: "a", Label: "l"}}}), storage.ErrHSMLabelTaken)
		if err := apply(storage.HSMChange{RequireFreeLabels: []storage.HSMLabel{{Owner: "b", Label: "l"}}}); err != nil {
			t.Fatalf("another owner's label: %v", err)
		}
		conflict("insert over a stored version", apply(storage.HSMChange{InsertObjects: []storage.HSMObject{obj(1, "a1", "other")}}),
			storage.ErrHSMObjectChanged)
		head := storage.HSMObjectHead{ID: "k", Version: 1, Attrs: []byte("a1")}
		if err := apply(storage.HSMChange{RequireHeads: []storage.HSMObjectHead{head}, InsertObjects: []storage.HSMObject{obj(2, "a2", "v2")}}); err != nil {
			t.Fatal(err)
		}
		// The same head again is stale now: nothing of the change is written.
		conflict("stale head", apply(storage.HSMChange{RequireHeads: []storage.HSMObjectHead{head},
			InsertObjects: []storage.HSMObject{obj(3, "a3", "v3")}}), storage.ErrHSMObjectChanged)
		conflict("changed attributes", apply(storage.HSMChange{
			RequireHeads: []storage.HSMObjectHead{{ID: "k", Version: 2, Attrs: []byte("other")}},
			PutObjects:   []storage.HSMObject{obj(2, "b2", "w2")}}), storage.ErrHSMObjectChanged)
		conflict("destroyed object", apply(storage.HSMChange{RequireHeads: []storage.HSMObjectHead{{ID: "gone", Version: 1}}}),
			storage.ErrHSMObjectChanged)
		conflict("a key for a user that does not exist", apply(storage.HSMChange{RequireUsers: []string{"nobody"},
			InsertObjects: []storage.HSMObject{{ID: "k3", Version: 1, Owner: "nobody", Label: "m", Attrs: []byte("x"), Sealed: []byte("x")}}}),
			storage.ErrHSMUserChanged)
		conflict("deleting a user who owns a key", apply(storage.HSMChange{RequireNoOwned: []string{"a"}, DeleteUsers: []string{"a"}}),
			storage.ErrHSMUserChanged)
		got, err := db.HSMObject(ctx, "k")
		if err != nil || len(got) != 2 || string(got[0].Sealed) != "v1" || string(got[1].Sealed) != "v2" || string(got[1].Attrs) != "a2" {
			t.Fatalf("stored versions %+v %v", got, err)
		}
		if seq, _, _ := db.HSMAuditHead(ctx); seq != 4 {
			t.Fatalf("audit head %d, want 4 (failed changes append nothing)", seq)
		}
	})
}
