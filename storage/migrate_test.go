package storage_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// Nodes started together on a new release migrate one schema once: the
// others wait for the lock, then find nothing to do. Without the lock one
// failed with "column already exists" and exited.
func TestConcurrentMigrations(t *testing.T) {
	dsn := storagetest.PostgresSchema(t)
	// The schema as an earlier release left it: migrated up to 00110.
	db, err := storage.Open(context.Background(), storage.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE api_idempotency DROP COLUMN keep_until`, `DROP TABLE blocked_keys`,
		`DROP INDEX certificates_revoked_updated, certificates_revoked_at, certificates_issuer_serial, certificates_valid_not_after`,
		`CREATE INDEX certificates_issuer_status_revoked ON certificates (issuer_id, status, revoked_at)`,
		`CREATE INDEX certificate_names_serial ON certificate_names (serial)`,
		`ALTER TABLE certificates DROP COLUMN key_hash`, `ALTER TABLE certificates DROP COLUMN origin`, `DROP TABLE console_sessions`,
		`ALTER TABLE hsm_audit_head DROP COLUMN mac_from, DROP COLUMN mac_seq, DROP COLUMN mac`, `ALTER TABLE hsm_audit DROP COLUMN mac`,
		`ALTER TABLE hsm_users DROP COLUMN mac`, `DROP INDEX hsm_audit_object`,
		`DELETE FROM goose_db_version WHERE version_id > 110`,
		// A renewal claim that release wrote, for a certificate ending at 777.
		`INSERT INTO certificates (serial, issuer_id, profile, requester, status, not_after, created_at, updated_at)
			VALUES ('0a0b', 'i', 'p', 'r', 'valid', 777, 1, 1)`,
		`INSERT INTO api_idempotency (principal, idem_key, request_hash, serial, created_at) VALUES ('renew:0a0b', 'renewal', 'x', '0c0d', 1)`} {
		if _, err := db.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			<-start
			db, err := storage.Open(context.Background(), storage.Postgres, dsn)
			if err == nil {
				db.Close()
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a node opening the database with the others: %v", err)
		}
	}
	// Migration 00130 keeps that claim until its certificate's end.
	db, err = storage.Open(context.Background(), storage.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var keep int64
	if err := db.QueryRow(context.Background(), `SELECT keep_until FROM api_idempotency WHERE principal = 'renew:0a0b'`).Scan(&keep); err != nil || keep != 777 {
		t.Fatalf("the old renewal claim's keep_until: %d, %v; want 777", keep, err)
	}
}

// A migration that needs a table's exclusive lock (00210 adds a column)
// does not wait behind a transaction holding the table, with every node's
// queries queued behind it: it gives up after its lock_timeout and says
// why, and the next start migrates once that transaction has ended.
func TestMigrationGivesUpBehindALongTransaction(t *testing.T) {
	ctx := context.Background()
	dsn := storagetest.PostgresSchema(t)
	db, err := storage.Open(ctx, storage.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	beforeOrigin(t, db)
	// A backup's transaction: it holds certificates until it commits.
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT COUNT(*) FROM certificates`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		other, err := storage.Open(ctx, storage.Postgres, dsn)
		if err == nil {
			other.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "gave up") {
			t.Fatalf("migrating behind a long transaction: %v, want it to give up and say why", err)
		}
	case <-time.After(30 * time.Second):
		tx.Rollback() // lets the waiting migration through, to end the test
		<-done
		t.Fatal("the migration waited behind the transaction")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = storage.Open(ctx, storage.Postgres, dsn)
	if err != nil {
		t.Fatalf("migrating after the transaction ended: %v", err)
	}
	db.Close()
}
