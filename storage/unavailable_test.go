package storage_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestClassifyUnavailable: real driver errors that mean "the database
// cannot act now" become KindUnavailable (503 at the front ends); a
// client-caused or unrelated error does not.
func TestClassifyUnavailable(t *testing.T) {
	ctx := context.Background()
	// PostgreSQL that cannot be reached: a pgconn.ConnectError.
	pg, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:1/test?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if err := storage.Classify(pg.PingContext(ctx)); core.KindOf(err) != core.KindUnavailable {
		t.Errorf("PostgreSQL unreachable: %v (kind %s)", err, core.KindOf(err))
	}

	// SQLite locked by another connection's write: SQLITE_BUSY.
	path := filepath.Join(t.TempDir(), "busy.db")
	a, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.ExecContext(ctx, "CREATE TABLE t (x INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	conn, err := a.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	_, err = b.ExecContext(ctx, "INSERT INTO t VALUES (1)")
	if core.KindOf(storage.Classify(err)) != core.KindUnavailable {
		t.Errorf("SQLite busy: %v", err)
	}
	conn.ExecContext(ctx, "COMMIT")

	// A database that became read-only: SQLITE_READONLY.
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	if err == nil || core.KindOf(storage.Classify(err)) != core.KindUnavailable {
		t.Errorf("SQLite read-only: %v", err)
	}

	// A constraint violation is not an outage.
	if _, err := a.ExecContext(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	_, err = a.ExecContext(ctx, "INSERT INTO t VALUES (2)")
	if err == nil || core.KindOf(storage.Classify(err)) != core.KindInternal {
		t.Errorf("duplicate key: %v", err)
	}
	// Errors with a kind keep it.
	if got := storage.Classify(core.ErrNotFound); got != core.ErrNotFound {
		t.Errorf("not found: %v", got)
	}
}

// TestConnClosedIsUnavailable: a PostgreSQL connection that closed under a
// transaction (a review cut the network under load) made pgx answer "conn
// closed" at begin or commit, which was a 500 "internal error" for 75 of
// 5,000 requests; the others got 503. It is unavailable too.
func TestConnClosedIsUnavailable(t *testing.T) {
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, storagetest.PostgresURL())
	if err != nil {
		storagetest.ServiceMissing(t, "PostgreSQL", err)
	}
	c.Close(ctx)
	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	if err == nil {
		t.Fatal("a closed connection ran a query")
	}
	if err := storage.Classify(fmt.Errorf("committing transaction: %w", err)); core.KindOf(err) != core.KindUnavailable {
		t.Errorf("a closed connection: %v (kind %s), want unavailable", err, core.KindOf(err))
	}
}
