package hsm

import (
	"context"
	"errors"
	"slices"
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

// TestDamagedKeyReadsOneKey: DamagedKey answers for one id as DamagedKeys
// lists it — for its creator, an officer, another user, a key whose row
// names another owner, an intact key and a missing id — without reading
// the whole keystore: the key service asked DamagedKeys about each id that
// failed, whose scan made another application's damaged id slower to
// refuse than a missing one.
func TestDamagedKeyReadsOneKey(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	var ids []string
	for _, label := range []string{"alice/sealed", "alice/relabelled", "alice/intact"} {
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: label})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET owner = 'bob', label = 'bob/relabelled' WHERE id = ?`, ids[1]); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, "no-such-key")
	ss := &scanStore{Store: f.db}
	m := newModule(t, ss)
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct{ name, pin string }{{"alice", alicePIN}, {"bob", bobPIN}, {"co", officerPIN}} {
		s, err := m.Login(ctx, who.name, who.pin)
		if err != nil {
			t.Fatal(err)
		}
		listed, err := s.DamagedKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"alice": 2, "bob": 0, "co": 2}[who.name]; len(listed) != want {
			t.Fatalf("DamagedKeys as %s: %+v, want %d keys", who.name, listed, want)
		}
		scans := ss.scans.Load()
		for _, id := range ids {
			got, ok, err := s.DamagedKey(ctx, id)
			i := slices.IndexFunc(listed, func(d DamagedKey) bool { return d.ID == id })
			switch {
			case err != nil:
				t.Errorf("DamagedKey(%s) as %s: %v", id, who.name, err)
			case ok != (i >= 0):
				t.Errorf("DamagedKey(%s) as %s: %v, DamagedKeys lists it: %v", id, who.name, ok, i >= 0)
			case ok && !sameDamaged(got, listed[i]):
				t.Errorf("DamagedKey(%s) as %s = %+v, DamagedKeys lists %+v", id, who.name, got, listed[i])
			case !ok && !sameDamaged(got, DamagedKey{}):
				t.Errorf("DamagedKey(%s) as %s = %+v for a key it may not know of", id, who.name, got)
			}
		}
		if n := ss.scans.Load() - scans; n != 0 {
			t.Errorf("DamagedKey as %s read the whole keystore %d times", who.name, n)
		}
	}
}

// sameDamaged compares what DamagedKey and DamagedKeys say of a key.
func sameDamaged(a, b DamagedKey) bool {
	return a.ID == b.ID && a.Label == b.Label && a.Owner == b.Owner && a.Reason == b.Reason && a.Created == b.Created
}

// TestDamagedCount: the module counts the damaged keys without a scan of
// the keystore: unknown (-1) before the first CheckObjects, what that
// check found, plus a key found damaged when used, minus one destroyed
// with DestroyDamaged and one whose rows were put back as they were. A
// key damaged and not used since counts from the next check; one the key
// sync finds altered counts at once.
func TestDamagedCount(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	var ids []string
	for _, label := range []string{"used", "unused", "restored"} {
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: label})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	ss := &scanStore{Store: f.db}
	m := newModule(t, ss)
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	alice, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	officer, err := m.Login(ctx, "co", officerPIN)
	if err != nil {
		t.Fatal(err)
	}
	count := func(when string, want int) {
		t.Helper()
		if n := m.DamagedCount(); n != want {
			t.Errorf("DamagedCount %s: %d, want %d", when, n, want)
		}
	}
	count("before any check", -1)
	if _, err := m.CheckObjects(ctx); err != nil {
		t.Fatal(err)
	}
	count("after a check of an intact keystore", 0)
	var sealed [][]byte
	for _, id := range ids {
		var b []byte
		if err := f.db.QueryRow(ctx, `SELECT sealed FROM hsm_objects WHERE id = ?`, id).Scan(&b); err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, b)
		if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), id); err != nil {
			t.Fatal(err)
		}
	}
	scans := ss.scans.Load()
	for _, id := range []string{ids[0], ids[2]} {
		if _, err := alice.Encrypt(ctx, id, []byte("x"), nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("encrypt with a damaged key: %v", err)
		}
	}
	count("after two damaged keys were used", 2)
	if n := ss.scans.Load() - scans; n != 0 {
		t.Errorf("counting damaged keys in use read the whole keystore %d times", n)
	}
	if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, sealed[2], ids[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Encrypt(ctx, ids[2], []byte("x"), nil); err != nil {
		t.Fatalf("encrypt with the key put back: %v", err)
	}
	count("after one was put back", 1)
	if _, err := m.CheckObjects(ctx); err != nil {
		t.Fatal(err)
	}
	count("after a check", 2)
	if _, err := officer.DestroyDamaged(ctx, ids[0], nil); err != nil {
		t.Fatal(err)
	}
	count("after one was destroyed", 1)

	// A key this node holds, altered on another's watch, counts once the
	// key sync finds it.
	k, err := alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "synced"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(ctx, `UPDATE hsm_objects SET attrs = attrs || ' ' WHERE id = ?`, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SyncKeys(ctx); err != nil {
		t.Fatal(err)
	}
	count("after the key sync found one", 2)
}
