package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestRenewalOriginsFilled: upgrading a database whose renewals were
// recorded without their origin (before 00210) records each one's: who
// asked for the first certificate of its line, however long the line; a
// line whose first certificate is missing gets none, and what is no
// renewal keeps none.
func TestRenewalOriginsFilled(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "strongroom.db")
		checkOriginsFilled(t, storage.SQLite, path)
	})
	t.Run("postgres", func(t *testing.T) {
		checkOriginsFilled(t, storage.Postgres, storagetest.PostgresSchema(t))
	})
}

func checkOriginsFilled(t *testing.T, dialect storage.Dialect, dsn string) {
	ctx := context.Background()
	db, err := storage.Open(ctx, dialect, dsn)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	beforeOrigin(t, db)
	add := func(serial, requester string) {
		t.Helper()
		exec(`INSERT INTO certificates (serial, issuer_id, profile, requester, status, created_at, updated_at)
			VALUES (?, 'intermediate', 'tls-server', ?, 'valid', 1, 1)`, serial, requester)
	}
	const depth = 1500 // beyond ra.MaxRenewalWalk: filled, nothing to walk
	add("a0", "apikey:k1")
	for i := 1; i <= depth; i++ {
		add(fmt.Sprintf("a%d", i), fmt.Sprintf("renew:a%d", i-1))
	}
	add("b0", "console:apikey:k2")
	add("b1", "renew:b0")
	add("b2", "renew:b0") // a second renewal of one certificate (after a rekey refusal, say)
	add("c1", "renew:gone")
	add("c2", "renew:c1")
	add("d0", "mtls:deploy")
	add("u1", "Renew:a0") // not a renewal's requester: ra compares the prefix exactly
	add("u2", "renew:u1")
	db.Close()

	db, err = storage.Open(ctx, dialect, dsn)
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer db.Close()
	want := map[string]string{"a0": "", "a1": "apikey:k1", "a750": "apikey:k1", fmt.Sprintf("a%d", depth): "apikey:k1",
		"b0": "", "b1": "console:apikey:k2", "b2": "console:apikey:k2", "c1": "", "c2": "", "d0": "", "u1": "", "u2": "Renew:a0"}
	for serial, origin := range want {
		var got string
		if err := db.QueryRow(ctx, `SELECT origin FROM certificates WHERE serial = ?`, serial).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != origin {
			t.Errorf("%s: origin %q, want %q", serial, got, origin)
		}
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE origin = 'apikey:k1'`).Scan(&n); err != nil || n != depth {
		t.Errorf("%d renewals of the long line got its origin (%v), want %d", n, err, depth)
	}
}

// beforeOrigin takes a migrated database back to the schema the release
// before 00210 left: no origin column, and the migrations from 00210 on
// to run again at the next Open.
func beforeOrigin(t *testing.T, db *storage.DB) {
	t.Helper()
	for _, q := range []string{`ALTER TABLE certificates DROP COLUMN origin`, `DELETE FROM goose_db_version WHERE version_id >= 210`} {
		if _, err := db.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}
