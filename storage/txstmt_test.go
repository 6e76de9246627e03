package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
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

// TestCertWriterNeedsNoSecondConnection: the certificate writer's group
// commit ran each statement it had not prepared yet through a pool
// prepare, inside its transaction. A review saw a node's issuance stall
// for 10 s at every start under load, and at each new number of SANs,
// with the pool's other connections waiting on the writer's lock; here
// they are simply taken. The writer's statements need only its own.
func TestCertWriterNeedsNoSecondConnection(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	db.SetTimeout(3 * time.Second)
	ctx := context.Background()
	w := storage.NewCertWriter(db)
	defer w.Close()
	var held []interface{ Close() error }
	for range db.SQL().Stats().MaxOpenConnections - 1 {
		c, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	now := time.Now().UTC()
	c := &core.Certificate{Serial: newSerial(t), IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: now}
	start := time.Now()
	if err := w.ReserveSerial(ctx, c); err != nil {
		t.Fatalf("reserving a serial with the writer's connection only: %v (after %v)", err, time.Since(start))
	}
	c.Names, c.TBS, c.NotAfter = []string{"a.example", "b.example", "c.example"}, []byte("tbs"), now.Add(time.Hour)
	if err := w.RecordIntent(ctx, c, now); err != nil {
		t.Fatalf("recording an intent with the writer's connection only: %v", err)
	}
}
