package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
)

// A review stripped the audit log's authentication and deleted
// audit_auth_from: the KEK no longer opened, and `ca hsm audit verify`
// still said "intact" with exit 0, while the unseal blamed the key file.
// Verify now fails when it cannot unseal, and the unseal names tampering.
func TestAuditVerifyWithoutUnsealFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "audit", "verify"); err != nil || !strings.Contains(out, "audit log intact") {
		t.Fatalf("verify of an untouched log: %v\n%s", err, out)
	}
	db, err := storage.Open(context.Background(), storage.SQLite, filepath.Join(dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE hsm_audit SET mac = x''`, `UPDATE hsm_audit_head SET mac_from = 0, mac_seq = 0, mac = x''`,
		`DELETE FROM hsm_meta WHERE name = 'audit_auth_from'`} {
		if _, err := db.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	_, err = runCA(t, "--data", dir, "hsm", "audit", "verify")
	if err == nil || !strings.Contains(err.Error(), "could not be checked") || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("verify of a stripped log whose audit_auth_from was deleted: %v", err)
	}
}
