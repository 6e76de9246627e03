package storage_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestHSMUserMAC: a user row's MAC is stored and read back with it; a PIN
// change writes the new hash and MAC together; AddUserMACs authenticates
// only a row still as read and without a MAC; RequireMeta writes nothing
// unless the meta record is as read.
func TestHSMUserMAC(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		apply := func(ch storage.HSMChange) error {
			ch.Audit = func(prev int64, h []byte) storage.HSMAuditEntry {
				return storage.HSMAuditEntry{Seq: prev + 1, At: time.Now(), Action: "x", PrevHash: append([]byte{}, h...), Hash: []byte{byte(prev + 1)}}
			}
			return db.ApplyHSM(ctx, ch)
		}
		mac := func(name string) []byte {
			t.Helper()
			u, err := db.HSMUser(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			return u.MAC
		}
		created := time.Now().UTC().Truncate(time.Microsecond)
		a := storage.HSMUser{Name: "a", Role: "user", PINHash: "h1", Created: created, MAC: []byte("mac-a")}
		b := storage.HSMUser{Name: "b", Role: "user", PINHash: "h2", Created: created} // as the previous release writes it
		if err := apply(storage.HSMChange{Meta: map[string][]byte{"wrapped_kek": []byte("w1")}, NewUsers: []storage.HSMUser{a, b}}); err != nil {
			t.Fatal(err)
		}
		if got := mac("a"); string(got) != "mac-a" {
			t.Fatalf("a's MAC = %q", got)
		}
		if got := mac("b"); len(got) != 0 {
			t.Fatalf("b's MAC = %q, want none", got)
		}
		if err := apply(storage.HSMChange{SetPIN: &storage.HSMPINChange{Name: "a", OldHash: "h1", NewHash: "h3", NewMAC: []byte("mac-a2")}}); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.HSMUser(ctx, "a"); u.PINHash != "h3" || string(u.MAC) != "mac-a2" {
			t.Fatalf("after the PIN change: %+v", u)
		}
		c := &storage.HSMPINCheck{Name: "a", PINHash: "h3", Right: true, Limit: 5}
		if err := apply(storage.HSMChange{PINCheck: c}); err != nil || c.Outcome != storage.HSMPINAccepted || string(c.User.MAC) != "mac-a2" {
			t.Fatalf("PIN check: %v %+v", err, c)
		}

		changed := func(what string, err error, want error) {
			t.Helper()
			if err == nil || (want != nil && !errors.Is(err, want)) || core.KindOf(err) != core.KindConflict {
				t.Fatalf("%s: %v, want %v", what, err, want)
			}
		}
		bm := b
		bm.MAC = []byte("mac-b")
		stale := bm
		stale.Role = "officer"
		changed("a row that is not as read", apply(storage.HSMChange{AddUserMACs: []storage.HSMUser{stale},
			Meta: map[string][]byte{"users_mac": []byte("1")}}), storage.ErrHSMUserChanged)
		am := a
		am.PINHash, am.MAC = "h3", []byte("other")
		changed("a row with a MAC", apply(storage.HSMChange{AddUserMACs: []storage.HSMUser{bm, am}}), storage.ErrHSMUserChanged)
		changed("a wrapped KEK replaced meanwhile", apply(storage.HSMChange{AddUserMACs: []storage.HSMUser{bm},
			RequireMeta: map[string][]byte{"wrapped_kek": []byte("w0")}}), nil)
		changed("a meta record absent", apply(storage.HSMChange{RequireMeta: map[string][]byte{"users_mac": []byte("1")}}), nil)
		if got := mac("b"); len(got) != 0 {
			t.Fatalf("b's MAC written by a change that failed: %q", got)
		}
		if meta, _ := db.HSMMeta(ctx); meta["users_mac"] != nil {
			t.Fatal("meta written by a change that failed")
		}
		if err := apply(storage.HSMChange{AddUserMACs: []storage.HSMUser{bm}, RequireMeta: map[string][]byte{"wrapped_kek": []byte("w1")},
			Meta: map[string][]byte{"wrapped_kek": []byte("w2"), "users_mac": []byte("1")}}); err != nil {
			t.Fatal(err)
		}
		if got := mac("b"); !bytes.Equal(got, []byte("mac-b")) {
			t.Fatalf("b's MAC = %q", got)
		}
	})
}
