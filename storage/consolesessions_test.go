package storage_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// A console session is found by its id until it is ended; creating one
// prunes the expired ones, and ending twice is no error.
func TestConsoleSessions(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		old := &storage.ConsoleSession{ID: []byte("old-session-hash"), KeyID: "k1", CreatedAt: now.Add(-9 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
		s := &storage.ConsoleSession{ID: []byte("new-session-hash"), KeyID: "k2", CreatedAt: now, ExpiresAt: now.Add(8 * time.Hour)}
		for _, x := range []*storage.ConsoleSession{old, s} {
			if err := db.CreateConsoleSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.ConsoleSessionByID(ctx, s.ID)
		if err != nil || got.KeyID != "k2" || !got.ExpiresAt.Equal(s.ExpiresAt) || !bytes.Equal(got.ID, s.ID) {
			t.Fatalf("read back: %+v, %v", got, err)
		}
		if _, err := db.ConsoleSessionByID(ctx, old.ID); !core.IsNotFound(err) {
			t.Fatalf("the expired session was not pruned: %v", err)
		}
		for range 2 {
			if err := db.EndConsoleSession(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ConsoleSessionByID(ctx, s.ID); !core.IsNotFound(err) {
			t.Fatalf("an ended session: %v", err)
		}
	})
}
