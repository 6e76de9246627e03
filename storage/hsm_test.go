package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestHSMApplyIsAtomic(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		entry := func(prev int64, h []byte) storage.HSMAuditEntry {
			return storage.HSMAuditEntry{Seq: prev + 1, At: time.Now(), Action: "x", PrevHash: append([]byte{}, h...), Hash: []byte{byte(prev + 1)}}
		}
		u := storage.HSMUser{Name: "a", Role: "user", PINHash: "h", Created: time.Now()}
		if err := db.ApplyHSM(ctx, storage.HSMChange{Meta: map[string][]byte{"method": []byte("keyfile")}, NewUsers: []storage.HSMUser{u}, Audit: entry}); err != nil {
			t.Fatal(err)
		}
		// A change whose audit entry cannot be appended writes nothing.
		o := storage.HSMObject{ID: "k", Version: 1, Owner: "a", Attrs: []byte("{}"), Sealed: []byte{1}, Created: time.Now()}
		bad := func(prev int64, h []byte) storage.HSMAuditEntry { e := entry(prev, h); e.Seq = 99; return e }
		if err := db.ApplyHSM(ctx, storage.HSMChange{PutObjects: []storage.HSMObject{o}, Audit: bad}); err == nil {
			t.Fatal("out-of-order audit entry accepted")
		}
		if _, err := db.HSMObject(ctx, "k"); !core.IsNotFound(err) {
			t.Fatalf("object written despite failed audit: %v", err)
		}
		if err := db.ApplyHSM(ctx, storage.HSMChange{RequireNoMeta: "method"}); core.KindOf(err) != core.KindConflict {
			t.Fatalf("RequireNoMeta: %v", err)
		}
		if err := db.ApplyHSM(ctx, storage.HSMChange{PutObjects: []storage.HSMObject{o}, Audit: entry}); err != nil {
			t.Fatal(err)
		}
		if err := db.ApplyHSM(ctx, storage.HSMChange{AddUses: []storage.HSMUse{{ID: "k", Version: 1, N: 5}}, Audit: entry}); err != nil {
			t.Fatal(err)
		}
		got, err := db.HSMObject(ctx, "k")
		if err != nil || len(got) != 1 || got[0].Uses != 5 {
			t.Fatalf("object %+v %v", got, err)
		}
		seq, h, _ := db.HSMAuditHead(ctx)
		es, _ := db.HSMAudit(ctx, 1, 0)
		if seq != 3 || len(es) != 3 || h[0] != 3 {
			t.Fatalf("head %d, %d entries", seq, len(es))
		}
		gu, err := db.HSMUser(ctx, "a")
		if err != nil || gu.Role != "user" {
			t.Fatalf("user %+v %v", gu, err)
		}
	})
}

// TestHSMObjectCount: objects count once whatever their versions, only the
// owner's, only under the prefix (matched as text, not as a LIKE pattern).
func TestHSMObjectCount(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		entry := func(prev int64, h []byte) storage.HSMAuditEntry {
			return storage.HSMAuditEntry{Seq: prev + 1, At: time.Now(), Action: "x", PrevHash: append([]byte{}, h...), Hash: []byte{byte(prev + 1)}}
		}
		var objs []storage.HSMObject
		for _, o := range []struct {
			id, owner, label string
			version          int
		}{
			{"k1", "apps", "apikey:a_1/x", 1}, {"k1", "apps", "apikey:a_1/x", 2}, {"k2", "apps", "apikey:a_1/é", 1},
			{"k3", "apps", "apikey:a_10/x", 1}, {"k4", "apps", "apikey:aX1/x", 1}, {"k5", "other", "apikey:a_1/y", 1},
		} {
			objs = append(objs, storage.HSMObject{ID: o.id, Version: o.version, Owner: o.owner, Label: o.label, Attrs: []byte("{}"), Sealed: []byte{1}, Created: time.Now()})
		}
		if err := db.ApplyHSM(ctx, storage.HSMChange{PutObjects: objs, Audit: entry}); err != nil {
			t.Fatal(err)
		}
		for prefix, want := range map[string]int{"apikey:a_1/": 2, "apikey:a_10/": 1, "apikey:": 4, "nobody/": 0} {
			if n, err := db.HSMObjectCount(ctx, "apps", prefix); err != nil || n != want {
				t.Errorf("HSMObjectCount(apps, %q) = %d, %v; want %d", prefix, n, err, want)
			}
		}
	})
}
