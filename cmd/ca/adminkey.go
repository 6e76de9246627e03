package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/storage"
)

// adminKeyFile holds the admin API key made at initialisation (0600).
const adminKeyFile = "admin.key"

// createAdminKey makes the first admin API key and writes it to
// DIR/admin.key once. The database keeps only its hash.
func createAdminKey(ctx context.Context, dir string) error {
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	secret, _, err := api.CreateKey(ctx, db, "admin", []string{"admin"})
	if err != nil {
		return fmt.Errorf("creating the admin API key: %w", err)
	}
	return writeSecret(filepath.Join(dir, adminKeyFile), secret)
}

func openDB(ctx context.Context, cfg *config.Config, dir string) (*storage.DB, error) {
	dialect := storage.SQLite
	if cfg.Database.Driver == "postgres" {
		dialect = storage.Postgres
	} else if strings.Contains(os.Getenv(config.EnvDatabaseDSN), "://") {
		// A PostgreSQL URL would be taken for a SQLite file name.
		return nil, fmt.Errorf("%s holds a URL, but this node's database.driver is sqlite (%s): unset it, or use a data directory made with `ca init --database postgres`",
			config.EnvDatabaseDSN, config.FileName)
	}
	db, err := storage.Open(ctx, dialect, cfg.DatabaseDSN(dir))
	if err != nil {
		return nil, err
	}
	db.SetTimeout(cfg.Database.Timeout.D())
	return db, nil
}
