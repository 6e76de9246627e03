package main

import (
	"context"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
)

// TestOpenDBRefusesURLForSQLite: a PostgreSQL URL left in the environment
// is not taken for a SQLite file name, and the error says which setting is
// wrong without printing the URL (it may hold a password).
func TestOpenDBRefusesURLForSQLite(t *testing.T) {
	t.Setenv(config.EnvDatabaseDSN, "postgres://ca:s3cret@db.example/strongroom")
	cfg := &config.Config{Database: config.Database{Driver: "sqlite", DSN: "strongroom.db"}}
	db, err := openDB(context.Background(), cfg, t.TempDir())
	if err == nil {
		db.Close()
		t.Fatal("opened a SQLite database named after a URL")
	}
	if !strings.Contains(err.Error(), config.EnvDatabaseDSN) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error: %v", err)
	}
}
