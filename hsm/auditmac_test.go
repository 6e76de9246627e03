package hsm

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
)

// rechain rewrites the stored log as someone with write access to the
// database could: edit entries, then recompute every hash and the head.
func rechain(t *testing.T, db *storage.DB, keep int64, edit func(*storage.HSMAuditEntry)) {
	t.Helper()
	ctx := context.Background()
	es, err := db.HSMAudit(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := []byte{}
	for _, e := range es {
		if e.Seq > keep {
			if _, err := db.Exec(ctx, `DELETE FROM hsm_audit WHERE seq = ?`, e.Seq); err != nil {
				t.Fatal(err)
			}
			continue
		}
		edit(&e)
		e.PrevHash = prev
		e.Hash = auditHash(e)
		if _, err := db.Exec(ctx, `UPDATE hsm_audit SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Details, e.PrevHash, e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
	if _, err := db.Exec(ctx, `UPDATE hsm_audit_head SET seq = ?, hash = ?`, min(keep, int64(len(es))), prev); err != nil {
		t.Fatal(err)
	}
}

// TestAuditHeadAuthenticated: a review saw a log rewritten or truncated
// with recomputed hashes pass `ca hsm audit verify`. The head's MAC under a
// KEK-derived key catches both on an unsealed module.
func TestAuditHeadAuthenticated(t *testing.T) {
	ctx := context.Background()
	verify := func(t *testing.T, m *Module) AuditReport {
		t.Helper()
		r, err := m.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("intact", func(t *testing.T) {
		f := setup(t, sqliteDB(t))
		r := verify(t, f.m)
		if r.FirstBad != 0 || !r.MACChecked || r.AuthFrom != 1 || r.AuthSeq != r.HeadSeq || len(r.HeadHash) != 32 || len(r.Unauthenticated) != 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("rewritten", func(t *testing.T) {
		f := setup(t, sqliteDB(t))
		rechain(t, f.db, 1<<62, func(e *storage.HSMAuditEntry) {
			if e.Action == "user.create" {
				e.Details = "role=auditor"
			}
		})
		if r := verify(t, f.m); r.FirstBad == 0 || !strings.Contains(r.Problem, "MAC does not verify") {
			t.Fatalf("rewritten log: %+v", r)
		}
		// The next unsealed append does not cover the rewrite up.
		f.login(t, "bob", bobPIN)
		if r := verify(t, f.m); r.FirstBad == 0 || !strings.Contains(r.Problem, "MAC does not verify") {
			t.Fatalf("rewritten log after another append: %+v", r)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		f := setup(t, sqliteDB(t))
		head, _, _ := f.db.HSMAuditHead(ctx)
		rechain(t, f.db, head-2, func(*storage.HSMAuditEntry) {})
		if r := verify(t, f.m); r.FirstBad == 0 || !strings.Contains(r.Problem, "does not hold") {
			t.Fatalf("truncated log: %+v", r)
		}
		f.login(t, "bob", bobPIN)
		if r := verify(t, f.m); r.FirstBad == 0 || !strings.Contains(r.Problem, "truncated") {
			t.Fatalf("truncated log after another append: %+v", r)
		}
	})
	t.Run("from the previous release", func(t *testing.T) {
		f := setup(t, sqliteDB(t))
		toPreviousRelease(t, f)
		sealed := newModule(t, f.db)
		if r := verify(t, sealed); r.FirstBad != 0 || r.AuthSeq != 0 || r.MACChecked || r.AuthBound != 0 {
			t.Fatalf("unauthenticated log: %+v", r)
		}
		// The first unseal on this release starts authenticating, and binds
		// that start to the unseal material.
		m := f.reopen(t)
		r := verify(t, m)
		// Appended: hsm.unseal (where authentication begins), hsm.audit-bind
		// and hsm.users-bind.
		if r.FirstBad != 0 || !r.MACChecked || r.AuthFrom != r.HeadSeq-2 || r.AuthSeq != r.HeadSeq ||
			r.AuthBound != r.AuthFrom || !r.AuthBoundByUnseal {
			t.Fatalf("after the first unseal: %+v", r)
		}
		meta, _ := f.db.HSMMeta(ctx)
		if string(meta[metaAuditAuthFrom]) != strconv.FormatInt(r.AuthFrom, 10) {
			t.Fatalf("audit_auth_from = %q, want %d", meta[metaAuditAuthFrom], r.AuthFrom)
		}
		wk, _ := os.ReadFile(f.keyFile)
		if _, err := openKEK(wk, MethodKeyFile, meta[metaWrappedKEK]); err == nil {
			t.Fatal("the rewrapped KEK still opens with the v1 AAD")
		}
		// Bound once: another unseal changes nothing.
		m2 := f.reopen(t)
		if r2 := verify(t, m2); r2.FirstBad != 0 || r2.AuthBound != r.AuthFrom || r2.AuthFrom != r.AuthFrom {
			t.Fatalf("after a second unseal: %+v", r2)
		}
		if meta2, _ := f.db.HSMMeta(ctx); !bytes.Equal(meta2[metaWrappedKEK], meta[metaWrappedKEK]) {
			t.Fatal("the KEK was rewrapped again")
		}
	})
	t.Run("from the previous release, deferred binding", func(t *testing.T) {
		// A status or a backup run with this release before its first
		// serve authenticates what it appends but leaves the keystore as
		// the previous release reads it; the next unseal without the
		// option binds.
		f := setup(t, sqliteDB(t))
		toPreviousRelease(t, f)
		cli, err := New(ctx, Options{Store: f.db, KeySyncInterval: -1, DeferAuditBinding: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close(ctx)
		if err := cli.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
			t.Fatal(err)
		}
		r := verify(t, cli)
		if r.FirstBad != 0 || !r.MACChecked || r.AuthSeq != r.HeadSeq || r.AuthBound != 0 {
			t.Fatalf("after a deferred first unseal: %+v", r)
		}
		meta, _ := f.db.HSMMeta(ctx)
		if _, ok := meta[metaAuditAuthFrom]; ok {
			t.Fatal("audit_auth_from written by a module deferring the binding")
		}
		wk, _ := os.ReadFile(f.keyFile)
		if _, err := openKEK(wk, MethodKeyFile, meta[metaWrappedKEK]); err != nil {
			t.Fatalf("the previous release can no longer open the KEK: %v", err)
		}
		cli.Seal()
		m := f.reopen(t)
		if r2 := verify(t, m); r2.FirstBad != 0 || r2.AuthBound != r.AuthFrom || !r2.AuthBoundByUnseal {
			t.Fatalf("after the server's unseal: %+v (deferred run authenticated from #%d)", r2, r.AuthFrom)
		}
	})
	t.Run("appended while sealed", func(t *testing.T) {
		f := setup(t, sqliteDB(t))
		sealed := newModule(t, f.db) // another process, never unsealed
		if err := sealed.apply(ctx, storage.HSMChange{}, "", "selftest.fail", "", "test"); err != nil {
			t.Fatal(err)
		}
		r := verify(t, f.m)
		if r.FirstBad != 0 || !r.MACChecked || r.AuthSeq != r.HeadSeq-1 || r.Unauthenticated["selftest.fail"] != 1 {
			t.Fatalf("sealed append: %+v", r)
		}
		// Covered by the next authenticated head, still listed: it has no MAC.
		f.login(t, "bob", bobPIN)
		r = verify(t, f.m)
		if r.FirstBad != 0 || r.AuthSeq != r.HeadSeq || r.Unauthenticated["selftest.fail"] != 1 {
			t.Fatalf("after the next append: %+v", r)
		}
		want := fmt.Sprintf("1 entry has no MAC, so anyone able to write the database could have written it: #%d selftest.fail (appended while sealed", r.HeadSeq-1)
		if u := r.UnauthSummary(); !strings.HasPrefix(u, want) {
			t.Fatalf("UnauthSummary = %q, want it to start %q", u, want)
		}
	})
}

// stripAuth is the reviewer's attack: clear every entry's MAC and the
// head's authentication, as a log from before authentication would look.
func stripAuth(t *testing.T, db *storage.DB) {
	t.Helper()
	for _, q := range []string{`UPDATE hsm_audit_head SET mac_from = 0, mac_seq = 0, mac = ?`, `UPDATE hsm_audit SET mac = ?`} {
		if _, err := db.Exec(context.Background(), q, []byte{}); err != nil {
			t.Fatal(err)
		}
	}
}

// toPreviousRelease turns f's keystore into one from before audit
// authentication: the KEK wrapped with the v1 AAD, no audit_auth_from or
// users_mac, no MACs on audit entries or user rows. f.m is sealed.
func toPreviousRelease(t *testing.T, f *fixture) {
	t.Helper()
	if was := rebindAs(t, f, kekBinding{}); was.auditFrom == 0 {
		t.Fatalf("a fresh keystore without a bound audit start: %+v", was)
	}
	clearUserMACs(t, f.db)
	stripAuth(t, f.db)
}

// TestAuditStripDetected: a review stripped every MAC and the head's
// authentication, edited an entry and recomputed the hashes; verify took
// it for a log from before this release, and the next unsealed append
// vouched for it. The start of authentication is now bound into the
// wrapped KEK's AAD, so verify reports the strip.
func TestAuditStripDetected(t *testing.T) {
	ctx := context.Background()
	attack := func(t *testing.T, db *storage.DB) {
		t.Helper()
		stripAuth(t, db)
		rechain(t, db, 1<<62, func(e *storage.HSMAuditEntry) {
			if e.Action == "user.create" && e.Object == "bob" {
				e.Details = "role=officer"
			}
		})
	}
	check := func(t *testing.T, what string, m *Module, from int64) {
		t.Helper()
		r, err := m.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.FirstBad != from || !strings.Contains(r.Problem, "bound to the unseal material") || !strings.Contains(r.Problem, "#"+strconv.FormatInt(from, 10)) {
			t.Fatalf("%s: the strip is not reported at #%d: %+v", what, from, r)
		}
	}
	for _, c := range []struct {
		name    string
		prepare func(t *testing.T, f *fixture) (*Module, int64)
	}{
		{"fresh init", func(t *testing.T, f *fixture) (*Module, int64) { return f.m, 1 }},
		{"upgraded keystore", func(t *testing.T, f *fixture) (*Module, int64) {
			toPreviousRelease(t, f)
			m := f.reopen(t)
			r, err := m.VerifyAudit(ctx)
			if err != nil || r.FirstBad != 0 || r.AuthBound == 0 || !r.AuthBoundByUnseal {
				t.Fatalf("after the first unseal: %+v %v", r, err)
			}
			if _, err := m.Login(ctx, "bob", bobPIN); err != nil {
				t.Fatal(err)
			}
			return m, r.AuthBound
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, sqliteDB(t))
			m, from := c.prepare(t, f)
			attack(t, f.db)
			check(t, "unsealed", m, from)
			// An unsealed append after the strip does not vouch for it.
			if _, err := m.Login(ctx, "alice", alicePIN); err != nil {
				t.Fatal(err)
			}
			check(t, "after another append", m, from)
			check(t, "sealed, another process", newModule(t, f.db), from)
			check(t, "after an unseal", f.reopen(t), from)
		})
	}
}

// TestAuditAuthFromBound: audit_auth_from is in the wrapped KEK's AAD, so
// editing or deleting it makes the unseal fail.
func TestAuditAuthFromBound(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, value string // "": deleted
		want        error
	}{{"edited", "2", ErrBadUnseal}, {"deleted", "", ErrBadUnseal}, {"garbage", "01", ErrCorrupt}} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, sqliteDB(t))
			f.m.Seal()
			q, args := `UPDATE hsm_meta SET value = ? WHERE name = ?`, []any{[]byte(c.value), metaAuditAuthFrom}
			if c.value == "" {
				q, args = `DELETE FROM hsm_meta WHERE name = ?`, []any{metaAuditAuthFrom}
			}
			if _, err := f.db.Exec(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
			err := newModule(t, f.db).Unseal(ctx, UnsealInput{KeyFile: f.keyFile})
			if !errors.Is(err, c.want) {
				t.Fatalf("unseal after audit_auth_from %s: %v, want %v", c.name, err, c.want)
			}
		})
	}
}

// fakeWrapper stands in for a PKCS#11 token's AES key.
type fakeWrapper struct{ g cipher.AEAD }

func newFakeWrapper(t *testing.T) fakeWrapper {
	k := make([]byte, 32)
	rand.Read(k)
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(b)
	return fakeWrapper{g}
}

func (w fakeWrapper) Seal(p, aad []byte) ([]byte, error) {
	n := make([]byte, w.g.NonceSize())
	rand.Read(n)
	return w.g.Seal(n, n, p, aad), nil
}

func (w fakeWrapper) Open(s, aad []byte) ([]byte, error) {
	if len(s) < w.g.NonceSize() {
		return nil, errors.New("short")
	}
	return w.g.Open(nil, s[:w.g.NonceSize()], s[w.g.NonceSize():], aad)
}

// TestAuditBoundPKCS11: the token path binds the start too, at init and
// at an upgraded keystore's first unseal.
func TestAuditBoundPKCS11(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	w := newFakeWrapper(t)
	m := newModule(t, db)
	if _, err := m.Initialize(ctx, InitOptions{Method: MethodPKCS11, Wrapper: w, OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
		t.Fatal(err)
	}
	meta, _ := db.HSMMeta(ctx)
	if string(meta[metaAuditAuthFrom]) != "1" {
		t.Fatalf("audit_auth_from = %q", meta[metaAuditAuthFrom])
	}
	kek, err := w.Open(meta[metaWrappedKEK], kekAAD(MethodPKCS11, kekBinding{auditFrom: 1, usersMAC: true}))
	if err != nil {
		t.Fatal(err)
	}
	m.Seal()
	// The previous release's keystore.
	v1, _ := w.Seal(kek, kekAAD(MethodPKCS11, kekBinding{}))
	db.Exec(ctx, `UPDATE hsm_meta SET value = ? WHERE name = ?`, v1, metaWrappedKEK)
	db.Exec(ctx, `DELETE FROM hsm_meta WHERE name IN (?, ?)`, metaAuditAuthFrom, metaUsersMAC)
	clearUserMACs(t, db)
	stripAuth(t, db)
	m2 := newModule(t, db)
	if err := m2.Unseal(ctx, UnsealInput{Wrapper: w}); err != nil {
		t.Fatal(err)
	}
	r, err := m2.VerifyAudit(ctx)
	if err != nil || r.FirstBad != 0 || r.AuthBound != r.HeadSeq-2 || r.AuthFrom != r.AuthBound || !r.AuthBoundByUnseal || !r.MACChecked {
		t.Fatalf("after the first unseal: %+v %v", r, err)
	}
	if meta, _ := db.HSMMeta(ctx); string(meta[metaUsersMAC]) != "1" {
		t.Fatalf("users_mac = %q after the first unseal", meta[metaUsersMAC])
	}
	if _, err := m2.Login(ctx, "co", officerPIN); err != nil {
		t.Fatalf("the officer after the user rows were bound: %v", err)
	}
	m2.Seal()
	stripAuth(t, db)
	if r2, _ := newModule(t, db).VerifyAudit(ctx); r2.FirstBad != r.AuthBound {
		t.Fatalf("strip not reported: %+v", r2)
	}
	if err := newModule(t, db).Unseal(ctx, UnsealInput{Wrapper: w}); err != nil {
		t.Fatal(err)
	}
}
