package hsm

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestUsersBindRolledBack: a database writer saved the wrapped KEK of a
// keystore from before user records were authenticated, and after the
// upgrade's binding put it back, deleted users_mac and planted an officer
// without a MAC, hoping the next unseal would vouch for it as a record of
// the previous release (a verification found this). The authenticated
// audit log shows the earlier binding: the keystore is bound again
// vouching for no record, so the planted officer stays refused and the
// real users go on logging in.
func TestUsersBindRolledBack(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		f := setup(t, db)
		toUnboundUsers(t, f)
		meta, err := db.HSMMeta(ctx)
		if err != nil {
			t.Fatal(err)
		}
		oldWrapped := bytes.Clone(meta[metaWrappedKEK])
		m := f.reopen(t) // the upgrade's first unseal binds
		if e := lastAudit(t, db); e.Action != usersBindAction {
			t.Fatalf("no binding at the first unseal: %+v", e)
		}
		m.Seal()

		const malloryPIN = "mallory-pin-1"
		malloryHash, err := hashPIN(malloryPIN)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, `UPDATE hsm_meta SET value = ? WHERE name = ?`, oldWrapped, metaWrappedKEK)
		mustExec(t, db, `DELETE FROM hsm_meta WHERE name = ?`, metaUsersMAC)
		mustExec(t, db, `INSERT INTO hsm_users (name, role, pin_hash, failures, locked, created, mac) VALUES ('mallory', 'officer', ?, 0, 0, 1, ?)`, malloryHash, []byte{})

		// A command run before the next `ca serve` binds nothing, and
		// refuses the planted officer all the same.
		cli := f.command(t)
		_, err = cli.Login(ctx, "mallory", malloryPIN)
		refusedAsTampered(t, db, err, "mallory", "login")
		if _, err := cli.Login(ctx, "co", officerPIN); err != nil {
			t.Fatalf("the officer in a command after the rollback: %v", err)
		}
		cli.Seal()

		m = f.reopen(t)
		e := lastAudit(t, db)
		if e.Action != usersBindAction || !strings.Contains(e.Details, "authenticated=0") || !strings.Contains(e.Details, "rebound-after=") {
			t.Fatalf("the second binding: %+v", e)
		}
		if binds, err := db.HSMAuditByAction(ctx, usersBindAction, 0); err != nil || len(binds) != 2 {
			t.Fatalf("users-bind entries: %d (%v), want the upgrade's and this one", len(binds), err)
		}
		if meta, _ := db.HSMMeta(ctx); string(meta[metaUsersMAC]) != "1" {
			t.Fatal("users_mac not written again")
		}
		_, err = m.Login(ctx, "mallory", malloryPIN)
		refusedAsTampered(t, db, err, "mallory", "login")
		for u, pin := range map[string]string{"co": officerPIN, "alice": alicePIN, "bob": bobPIN} {
			if _, err := m.Login(ctx, u, pin); err != nil {
				t.Fatalf("%s after the rollback was caught: %v", u, err)
			}
		}
	})
}
