package hsm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// rebindAs rewraps the KEK of f's key-file keystore for b, with the meta
// rows to match, as a release that binds only b would have left it; f.m is
// sealed first. It returns what was bound before.
func rebindAs(t *testing.T, f *fixture, b kekBinding) kekBinding {
	t.Helper()
	ctx := context.Background()
	f.m.Seal()
	meta, err := f.db.HSMMeta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	was, err := metaBinding(meta)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := os.ReadFile(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := openKEKAAD(wk, kekAAD(MethodKeyFile, was), meta[metaWrappedKEK])
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := sealKEKAAD(wk, kekAAD(MethodKeyFile, b), kek)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `UPDATE hsm_meta SET value = ? WHERE name = ?`, wrapped, metaWrappedKEK)
	mustExec(t, f.db, `DELETE FROM hsm_meta WHERE name IN (?, ?)`, metaAuditAuthFrom, metaUsersMAC)
	for k, v := range b.meta() {
		mustExec(t, f.db, `INSERT INTO hsm_meta (name, value) VALUES (?, ?)`, k, v)
	}
	return was
}

func mustExec(t *testing.T, db *storage.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// clearUserMACs leaves the user rows as a release before their
// authentication wrote them.
func clearUserMACs(t *testing.T, db *storage.DB) {
	t.Helper()
	mustExec(t, db, `UPDATE hsm_users SET mac = ?`, []byte{})
}

// toUnboundUsers turns f's keystore into one of the previous release: the
// audit log's start bound (v2 AAD), no users_mac, no MACs on user rows.
// f.m is sealed.
func toUnboundUsers(t *testing.T, f *fixture) kekBinding {
	t.Helper()
	was := rebindAs(t, f, kekBinding{})
	if !was.usersMAC || was.auditFrom == 0 {
		t.Fatalf("a fresh keystore without both bindings: %+v", was)
	}
	b := kekBinding{auditFrom: was.auditFrom}
	rebindAs(t, f, b)
	clearUserMACs(t, f.db)
	return b
}

// command is a module as a CLI command opens it on f's keystore
// (DeferAuditBinding: it binds nothing), unsealed, closed when the test
// ends.
func (f *fixture) command(t *testing.T) *Module {
	t.Helper()
	ctx := context.Background()
	m, err := New(ctx, Options{Store: f.db, KeySyncInterval: -1, DeferAuditBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	return m
}

// lastAudit is the newest audit entry.
func lastAudit(t *testing.T, db *storage.DB) storage.HSMAuditEntry {
	t.Helper()
	head, _, err := db.HSMAuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	es, err := db.HSMAudit(context.Background(), head, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("reading audit entry #%d: %v", head, err)
	}
	return es[0]
}

// refusedAsTampered checks that a PIN given for user was refused as
// tampered, with its audit entry, and that nothing was counted.
func refusedAsTampered(t *testing.T, db *storage.DB, err error, user, during string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `user "`+user+`" was altered outside the HSM`) {
		t.Fatalf("%s of %s: %v, want it refused as altered outside the HSM", during, user, err)
	}
	want := withDuring("reason=tampered-user", during)
	if e := lastAudit(t, db); e.Action != "login.fail" || e.Object != user || e.Details != want || len(e.MAC) == 0 {
		t.Fatalf("audit after the refused %s: %+v, want login.fail %s", during, e, want)
	}
	if u, err := db.HSMUser(context.Background(), user); err == nil && (u.Failures != 0 || u.Locked) {
		t.Fatalf("%s: a refused PIN was counted: failures=%d locked=%v", user, u.Failures, u.Locked)
	}
}

// TestUserRowTampered: a database writer who knows no PIN replaced a
// user's PIN hash with one of a PIN of its own (or added an officer, or
// raised a role) and logged in with it. User rows are authenticated under
// the KEK now: the login is refused before its PIN is checked, counted or
// trusted, whatever the PIN; the user's sessions end; the officer's list
// marks the row.
func TestUserRowTampered(t *testing.T) {
	ctx := context.Background()
	const malloryPIN = "mallory-pin-1"
	malloryHash, err := hashPIN(malloryPIN)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		tamper    func(t *testing.T, f *fixture)
		user, pin string
		session   func(f *fixture) *Session // the user's session opened before, if any
	}{
		{"PIN hash replaced", func(t *testing.T, f *fixture) {
			mustExec(t, f.db, `UPDATE hsm_users SET pin_hash = ? WHERE name = 'alice'`, malloryHash)
		}, "alice", malloryPIN, func(f *fixture) *Session { return f.alice }},
		{"officer added without a MAC", func(t *testing.T, f *fixture) {
			mustExec(t, f.db, `INSERT INTO hsm_users (name, role, pin_hash, failures, locked, created) VALUES ('mallory', 'officer', ?, 0, 0, 1)`, malloryHash)
		}, "mallory", malloryPIN, nil},
		{"officer added with a made-up MAC", func(t *testing.T, f *fixture) {
			mac := make([]byte, 32)
			rand.Read(mac)
			mustExec(t, f.db, `INSERT INTO hsm_users (name, role, pin_hash, failures, locked, created, mac) VALUES ('mallory', 'officer', ?, 0, 0, 1, ?)`, malloryHash, mac)
		}, "mallory", malloryPIN, nil},
		{"row copied under another name", func(t *testing.T, f *fixture) {
			mustExec(t, f.db, `INSERT INTO hsm_users (name, role, pin_hash, failures, locked, created, mac)
				SELECT 'mallory', role, pin_hash, 0, 0, created, mac FROM hsm_users WHERE name = 'co'`)
		}, "mallory", officerPIN, nil},
		{"role raised", func(t *testing.T, f *fixture) {
			mustExec(t, f.db, `UPDATE hsm_users SET role = 'officer' WHERE name = 'bob'`)
		}, "bob", bobPIN, func(f *fixture) *Session { return f.bob }},
	} {
		t.Run(c.name, func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *storage.DB) {
				f := setup(t, db)
				c.tamper(t, f)
				_, err := f.m.Login(ctx, c.user, c.pin)
				refusedAsTampered(t, db, err, c.user, "login")
				_, err = f.m.Login(ctx, c.user, "not-the-pin-1")
				refusedAsTampered(t, db, err, c.user, "login")
				// Another process, nothing cached, refuses it as well.
				_, err = f.reopen(t).Login(ctx, c.user, c.pin)
				refusedAsTampered(t, db, err, c.user, "login")
				if c.session != nil {
					s := c.session(f)
					refusedAsTampered(t, db, s.ChangePIN(ctx, c.pin, "new-pin-123"), c.user, "pin-change")
					if err := f.m.SyncUsers(ctx); err != nil {
						t.Fatal(err)
					}
					if _, err := s.GenerateKey(ctx, KeySpec{Type: P256}); !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "altered outside the HSM") {
						t.Fatalf("the session of a user whose row was altered: %v", err)
					}
				}
				us, err := f.officer.ListUsers(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range us {
					if u.Tampered != (u.Name == c.user) {
						t.Fatalf("ListUsers: %s tampered=%v", u.Name, u.Tampered)
					}
				}
				// Untouched users go on logging in.
				f.login(t, "co", officerPIN)
			})
		})
	}
}

// TestUserRowTamperedDuringLogin: a role raised between the login's read
// of the row (whose MAC verified) and the statement that records the right
// PIN gives no session: the row is checked again as it stands in that
// transaction.
func TestUserRowTamperedDuringLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		hs := &hookStore{Store: db}
		m := newModule(t, hs)
		if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
			t.Fatal(err)
		}
		hs.setBeforeApply(func() { mustExec(t, db, `UPDATE hsm_users SET role = 'officer' WHERE name = 'bob'`) })
		s, err := m.Login(ctx, "bob", bobPIN)
		if s != nil {
			t.Fatalf("bob logged in as %s with a role raised during the login", s.Role())
		}
		refusedAsTampered(t, db, err, "bob", "login")
	})
}

// TestUserMACStripped: on a bound keystore, clearing every user row's MAC
// and deleting users_mac (to pass the rows off as a previous release's)
// makes the KEK fail to open; clearing the MACs alone leaves every user
// refused; an edited users_mac is refused as corrupt.
func TestUserMACStripped(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		t.Run("MACs and users_mac", func(t *testing.T) {
			f := setup(t, freshDB(t, db))
			f.m.Seal()
			clearUserMACs(t, f.db)
			mustExec(t, f.db, `DELETE FROM hsm_meta WHERE name = ?`, metaUsersMAC)
			err := newModule(t, f.db).Unseal(ctx, UnsealInput{KeyFile: f.keyFile})
			if !errors.Is(err, ErrBadUnseal) || !strings.Contains(err.Error(), metaUsersMAC+" edited or deleted") {
				t.Fatalf("unseal after the user rows' MACs and users_mac were stripped: %v", err)
			}
		})
		t.Run("MACs only", func(t *testing.T) {
			f := setup(t, freshDB(t, db))
			clearUserMACs(t, f.db)
			for _, u := range []string{"co", "alice"} {
				_, err := f.reopen(t).Login(ctx, u, map[string]string{"co": officerPIN, "alice": alicePIN}[u])
				refusedAsTampered(t, f.db, err, u, "login")
			}
		})
		t.Run("users_mac edited", func(t *testing.T) {
			f := setup(t, freshDB(t, db))
			f.m.Seal()
			mustExec(t, f.db, `UPDATE hsm_meta SET value = ? WHERE name = ?`, []byte("0"), metaUsersMAC)
			if err := newModule(t, f.db).Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unseal with users_mac edited: %v", err)
			}
		})
	})
}

// TestUsersUpgrade: a keystore of the previous release has user rows
// without MACs. They are accepted until its first unseal by the server
// (a command run before it, deferring the binding, authenticates the rows
// it writes and changes nothing else); that unseal gives every row a MAC
// and binds users_mac into the wrapped KEK in one audited change. The old
// users still log in with their PINs; a row written afterwards without a
// MAC, as a node of the previous release writes one, is refused.
func TestUsersUpgrade(t *testing.T) {
	ctx := context.Background()
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		f := setup(t, db)
		prev := toUnboundUsers(t, f)
		wk, err := os.ReadFile(f.keyFile)
		if err != nil {
			t.Fatal(err)
		}

		cli := f.command(t)
		co, err := cli.Login(ctx, "co", officerPIN) // a row without a MAC, not bound yet: accepted
		if err != nil {
			t.Fatalf("an officer of the previous release before the binding: %v", err)
		}
		if err := co.CreateUser(ctx, "carol", RoleUser, "carol-pin-1"); err != nil {
			t.Fatal(err)
		}
		meta, _ := db.HSMMeta(ctx)
		if _, ok := meta[metaUsersMAC]; ok {
			t.Fatal("users_mac written by a module deferring the binding")
		}
		if _, err := openKEKAAD(wk, kekAAD(MethodKeyFile, prev), meta[metaWrappedKEK]); err != nil {
			t.Fatalf("the previous release can no longer open the KEK: %v", err)
		}
		cli.Seal()

		m := f.reopen(t) // the server's first unseal binds
		meta, _ = db.HSMMeta(ctx)
		bound := kekBinding{auditFrom: prev.auditFrom, usersMAC: true}
		if string(meta[metaUsersMAC]) != "1" {
			t.Fatalf("users_mac = %q after the first unseal", meta[metaUsersMAC])
		}
		if _, err := openKEKAAD(wk, kekAAD(MethodKeyFile, bound), meta[metaWrappedKEK]); err != nil {
			t.Fatalf("the KEK is not wrapped with the v3 AAD: %v", err)
		}
		e := lastAudit(t, db)
		if e.Action != "hsm.users-bind" || e.Details != "users-mac=1 authenticated=3" || len(e.MAC) == 0 {
			t.Fatalf("the binding's audit entry: %+v", e)
		}
		us, _ := db.HSMUsers(ctx)
		for _, u := range us {
			if !hmac.Equal(u.MAC, userMAC(m.state.Load().userKey, u)) {
				t.Fatalf("%s has no valid MAC after the binding", u.Name)
			}
		}
		for u, pin := range map[string]string{"co": officerPIN, "alice": alicePIN, "bob": bobPIN, "carol": "carol-pin-1"} {
			if _, err := m.Login(ctx, u, pin); err != nil {
				t.Fatalf("%s after the binding: %v", u, err)
			}
		}
		// Bound once: another unseal changes nothing.
		f.reopen(t)
		if meta2, _ := db.HSMMeta(ctx); !bytes.Equal(meta2[metaWrappedKEK], meta[metaWrappedKEK]) {
			t.Fatal("the KEK was rewrapped again")
		}

		// A node of the previous release creates a user and changes a PIN.
		davePIN := "dave-pin-1"
		daveHash, _ := hashPIN(davePIN)
		mustExec(t, db, `INSERT INTO hsm_users (name, role, pin_hash, failures, locked, created) VALUES ('dave', 'user', ?, 0, 0, 1)`, daveHash)
		_, err = m.Login(ctx, "dave", davePIN)
		refusedAsTampered(t, db, err, "dave", "login")
		mustExec(t, db, `UPDATE hsm_users SET pin_hash = ? WHERE name = 'bob'`, daveHash)
		_, err = m.Login(ctx, "bob", davePIN)
		refusedAsTampered(t, db, err, "bob", "login")
	})
}

// TestUsersUpgradeTwoReleases: a keystore from before audit authentication
// gets both bindings at its first unseal on this release.
func TestUsersUpgradeTwoReleases(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	toPreviousRelease(t, f)
	m := f.reopen(t)
	meta, _ := f.db.HSMMeta(ctx)
	if b, err := metaBinding(meta); err != nil || b.auditFrom == 0 || !b.usersMAC {
		t.Fatalf("after the first unseal: %+v %v", b, err)
	}
	for u, pin := range map[string]string{"co": officerPIN, "alice": alicePIN, "bob": bobPIN} {
		if _, err := f.reopen(t).Login(ctx, u, pin); err != nil {
			t.Fatalf("%s after the binding: %v", u, err)
		}
	}
	if r, err := m.VerifyAudit(ctx); err != nil || r.FirstBad != 0 || !r.AuthBoundByUnseal {
		t.Fatalf("audit after both bindings: %+v %v", r, err)
	}
}

// TestUsersBindRace: two nodes unseal a previous release's keystore at
// once; the one that loses the binding finds it done by the other (the
// same KEK opens under the new AAD) and counts the rows as bound.
func TestUsersBindRace(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		n.b.Seal()
		toUnboundUsers(t, n.fixture)
		b := newModule(t, n.storeB)
		// B has opened the KEK (unbound) when A unseals and binds.
		n.storeB.setBeforeApply(func() {
			if err := newModule(t, n.db).Unseal(ctx, UnsealInput{KeyFile: n.keyFile}); err != nil {
				t.Errorf("node A: %v", err)
			}
		})
		if err := b.Unseal(ctx, UnsealInput{KeyFile: n.keyFile}); err != nil {
			t.Fatal(err)
		}
		if !b.state.Load().usersBound.Load() {
			t.Fatal("node B lost the binding and does not count the rows as bound")
		}
		es, _ := n.db.HSMAudit(ctx, 1, 0)
		if binds := len(slices.DeleteFunc(es, func(e storage.HSMAuditEntry) bool { return e.Action != "hsm.users-bind" })); binds != 1 {
			t.Fatalf("%d hsm.users-bind entries, want 1", binds)
		}
		if _, err := b.Login(ctx, "alice", alicePIN); err != nil {
			t.Fatalf("alice on node B: %v", err)
		}
		mustExec(t, n.db, `UPDATE hsm_users SET mac = ? WHERE name = 'alice'`, []byte{})
		_, err := b.Login(ctx, "alice", alicePIN)
		refusedAsTampered(t, n.db, err, "alice", "login")
	})
}

// TestUserRowsWritten: every write of a user row carries a MAC that
// verifies (the first officer, a created user, a PIN change; an unlock and
// PIN checks leave it valid), and a backup restored keeps them; an older
// backup, without MACs, restores unbound and is bound at its first unseal.
func TestUserRowsWritten(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		if err := f.alice.ChangePIN(ctx, alicePIN, "alice-pin-2"); err != nil {
			t.Fatal(err)
		}
		for range maxFailed {
			f.m.Login(ctx, "bob", "wrong-pin-1")
		}
		if err := f.officer.UnlockUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		key := f.m.state.Load().userKey
		us, _ := db.HSMUsers(ctx)
		if len(us) != 3 {
			t.Fatalf("%d users", len(us))
		}
		for _, u := range us {
			if !hmac.Equal(u.MAC, userMAC(key, u)) {
				t.Fatalf("%s: the stored MAC does not verify", u.Name)
			}
		}
		logins := map[string]string{"co": officerPIN, "alice": "alice-pin-2", "bob": bobPIN}
		for u, pin := range logins {
			if _, err := f.reopen(t).Login(ctx, u, pin); err != nil {
				t.Fatalf("%s: %v", u, err)
			}
		}

		restored := func(t *testing.T, file []byte) *Module {
			t.Helper()
			target := newModule(t, freshDB(t, db))
			if err := target.Restore(ctx, bytes.NewReader(file), RestoreInput{Unseal: UnsealInput{KeyFile: f.keyFile}}); err != nil {
				t.Fatal(err)
			}
			if err := target.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
				t.Fatal(err)
			}
			for u, pin := range logins {
				if _, err := target.Login(ctx, u, pin); err != nil {
					t.Fatalf("%s after the restore: %v", u, err)
				}
			}
			meta, _ := target.store.HSMMeta(ctx)
			if string(meta[metaUsersMAC]) != "1" {
				t.Fatalf("users_mac = %q after the restore and an unseal", meta[metaUsersMAC])
			}
			return target
		}
		var buf bytes.Buffer
		if err := f.m.Backup(ctx, &buf, BackupOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Run("backup", func(t *testing.T) {
			target := restored(t, buf.Bytes())
			us, _ := target.store.HSMUsers(ctx)
			for _, u := range us {
				if len(u.MAC) == 0 {
					t.Fatalf("%s restored without its MAC", u.Name)
				}
			}
		})
		t.Run("older backup", func(t *testing.T) {
			toUnboundUsers(t, f)
			m := newModule(t, db)
			m.deferBind = true // a backup taken with the previous release's keystore as it was
			if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
				t.Fatal(err)
			}
			var old bytes.Buffer
			if err := m.Backup(ctx, &old, BackupOptions{}); err != nil {
				t.Fatal(err)
			}
			target := restored(t, old.Bytes())
			es, _ := target.store.HSMAudit(ctx, 1, 0)
			if !slices.ContainsFunc(es, func(e storage.HSMAuditEntry) bool { return e.Action == "hsm.users-bind" }) {
				t.Fatal("the restored keystore was not bound at its first unseal")
			}
		})
	})
}
