package storage_test

import (
	"context"
	"sync"
	"testing"

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
		`ALTER TABLE certificates DROP COLUMN key_hash`, `DELETE FROM goose_db_version WHERE version_id IN (120, 130)`} {
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
}
