package hsm

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestDamagedKeysAreReported: a review saw a key whose sealed blob no longer
// opened left out of listings, and FindKey answer "no such object". It is
// listed as damaged, FindKey says it is damaged, CheckObjects counts it.
func TestDamagedKeysAreReported(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "intermediate"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "fine"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), k.ID); err != nil {
		t.Fatal(err)
	}
	forgetKey(f.m.state.Load(), k.ID)

	keys, err := f.alice.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Label != "fine" {
		t.Fatalf("ListKeys: %+v %v", keys, err)
	}
	for who, s := range map[string]*Session{"owner": f.alice, "officer": f.officer} {
		d, err := s.DamagedKeys(ctx)
		if err != nil || len(d) != 1 || d[0].ID != k.ID || d[0].Label != "intermediate" || !strings.Contains(d[0].Reason, "does not open") {
			t.Fatalf("DamagedKeys as the %s: %+v %v", who, d, err)
		}
	}
	if d, err := f.bob.DamagedKeys(ctx); err != nil || len(d) != 0 {
		t.Fatalf("another user learns of alice's damaged key: %+v %v", d, err)
	}
	_, err = f.alice.FindKey(ctx, "intermediate")
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "exists but is damaged") {
		t.Fatalf("FindKey of the damaged key: %v", err)
	}
	d, err := f.m.CheckObjects(ctx)
	if err != nil || len(d) != 1 || d[0].ID != k.ID {
		t.Fatalf("CheckObjects: %+v %v", d, err)
	}
}

// TestDamagedKeysByCreator: a damaged key is listed to the user its
// authenticated creation entry names, not to the one its row names (the
// row's owner and label are plain copies anyone who writes the database can
// change), so the key service can show an application its damaged keys
// without showing it another's.
func TestDamagedKeysByCreator(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "alice/signing"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET owner = 'bob', label = 'bob/signing' WHERE id = ?`, k.ID); err != nil {
		t.Fatal(err)
	}
	forgetKey(f.m.state.Load(), k.ID)
	d, err := f.alice.DamagedKeys(ctx)
	if err != nil || len(d) != 1 || d[0].ID != k.ID || d[0].Label != "bob/signing" ||
		d[0].Created != (Creation{Label: "alice/signing", By: "alice", Verified: true}) {
		t.Fatalf("DamagedKeys as its creator: %+v %v", d, err)
	}
	if d, err := f.bob.DamagedKeys(ctx); err != nil || len(d) != 0 {
		t.Fatalf("the user the row names learns of alice's damaged key: %+v %v", d, err)
	}
}
