package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestTxNeedsNoSecondConnection: a transaction running a statement for the
// first time must not take a second pool connection. Here every other
// connection is a writer waiting on the transaction's write lock; preparing
// on the pool then deadlocked until SQLite's busy timeout failed the
// writers (seen as a flaky ACME recovery test on a loaded CI machine).
func TestTxNeedsNoSecondConnection(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `CREATE TABLE txstmt (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO txstmt (id, n) VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	// Prepared ahead, so each writer holds its connection while it waits.
	if _, err := db.Exec(ctx, `UPDATE txstmt SET n = n + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	writers := db.SQL().Stats().MaxOpenConnections - 1
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	err := db.InTx(ctx, func(tx *storage.Tx) error {
		// The transaction holds the write lock (BEGIN IMMEDIATE); these
		// wait for it, each on its own connection.
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.Exec(ctx, `UPDATE txstmt SET n = n + 1 WHERE id = 1`)
				errs <- err
			}()
		}
		for db.SQL().Stats().InUse < writers+1 {
			time.Sleep(5 * time.Millisecond)
		}
		// A statement this process never ran, inside the transaction.
		_, err := tx.Exec(ctx, `UPDATE txstmt SET n = n + 100 WHERE id = 1 AND n >= 0`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a writer waiting on the transaction failed: %v", err)
		}
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT n FROM txstmt WHERE id = 1`).Scan(&n); err != nil || n != 101+writers {
		t.Fatalf("n = %d, %v; want %d", n, err, 101+writers)
	}
}
