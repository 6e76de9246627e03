package main

import (
	"context"
)

// adminKeyFile holds the admin API key made at initialisation (0600).
const adminKeyFile = "admin.key"

// createAdminKey makes the first admin API key and writes it to
// DIR/admin.key once.
func createAdminKey(ctx context.Context, dir string) error {
	return nil // TODO: api.CreateKey once package api lands
}
