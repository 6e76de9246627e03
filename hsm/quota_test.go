package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
)

// scanStore counts reads of the whole keystore.
type scanStore struct {
	Store
	scans atomic.Int64
}

func (s *scanStore) HSMObjects(ctx context.Context) ([]storage.HSMObject, error) {
	s.scans.Add(1)
	return s.Store.HSMObjects(ctx)
}

// TestCreateReadsNoOtherKeys: making a key costs the same however many
// keys exist — it never reads the whole keystore — and a label the user
// already has is still refused; CountKeys counts the user's keys under a
// label prefix.
func TestCreateReadsNoOtherKeys(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	ss := &scanStore{Store: f.db}
	m := newModule(t, ss)
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	alice, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := alice.GenerateKey(ctx, KeySpec{Type: AES128, Label: fmt.Sprintf("team-a/k%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.ImportKey(ctx, KeySpec{Type: AES128, Label: "team-b/k0"}, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	if n := ss.scans.Load(); n != 0 {
		t.Errorf("creating keys read the whole keystore %d times", n)
	}
	if _, err := alice.GenerateKey(ctx, KeySpec{Type: AES128, Label: "team-a/k1"}); !errors.Is(err, ErrExists) {
		t.Errorf("a label alice already has: %v, want ErrExists", err)
	}
	if _, err := f.bob.GenerateKey(ctx, KeySpec{Type: AES128, Label: "team-a/k1"}); err != nil {
		t.Errorf("the same label for another user: %v", err)
	}
	for prefix, want := range map[string]int{"team-a/": 3, "team-b/": 1, "": 4} {
		if n, err := alice.CountKeys(ctx, prefix); err != nil || n != want {
			t.Errorf("CountKeys(%q) = %d, %v; want %d", prefix, n, err, want)
		}
	}
	if _, err := f.officer.CountKeys(ctx, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("an officer counting keys: %v, want ErrForbidden", err)
	}
}
