// Package storagetest opens real databases for tests: a fresh SQLite file in
// the test's temp dir, and a fresh schema in the local PostgreSQL (database
// "test" at 127.0.0.1:5432, or STRONGROOM_TEST_POSTGRES). PostgreSQL tests
// skip with a clear message when the server is not reachable, unless
// STRONGROOM_REQUIRE_SERVICES=1, in which case they fail.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// PostgresURL is the server tests use.
func PostgresURL() string {
	if u := os.Getenv("STRONGROOM_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RedisAddr is the Redis server tests use.
func RedisAddr() string {
	if a := os.Getenv("STRONGROOM_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// ServiceMissing skips the test, or fails it when STRONGROOM_REQUIRE_SERVICES=1.
func ServiceMissing(t testing.TB, service string, err error) {
	t.Helper()
	if os.Getenv("STRONGROOM_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is required (STRONGROOM_REQUIRE_SERVICES=1) but not reachable: %v", service, err)
	}
	t.Skipf("skipping: %s not reachable (%v); set STRONGROOM_REQUIRE_SERVICES=1 to make this a failure", service, err)
}

// SQLite opens a migrated database in a new file under t.TempDir(). It also
// returns the file's path, for tests that inspect the bytes on disk.
func SQLite(t testing.TB) (*storage.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "strongroom.db")
	db, err := storage.Open(context.Background(), storage.SQLite, path)
	if err != nil {
		t.Fatalf("opening SQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// Postgres opens a migrated database in a fresh schema of the test server,
// dropped when the test ends.
func Postgres(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), storage.Postgres, PostgresSchema(t))
	if err != nil {
		t.Fatalf("opening PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresSchema creates a fresh, empty schema on the test server, dropped
// when the test ends, and returns the DSN that uses it.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("pgx", PostgresURL())
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = admin.PingContext(pctx)
		cancel()
	}
	if err != nil {
		ServiceMissing(t, "PostgreSQL at "+PostgresURL(), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	sep := "?"
	if strings.Contains(PostgresURL(), "?") {
		sep = "&"
	}
	return PostgresURL() + sep + "search_path=" + schema
}

// Each runs fn as a subtest against SQLite and against PostgreSQL.
func Each(t *testing.T, fn func(t *testing.T, db *storage.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, _ := SQLite(t)
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, Postgres(t))
	})
}
