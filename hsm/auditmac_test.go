package hsm

import (
	"context"
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
		for _, q := range []string{`UPDATE hsm_audit_head SET mac_from = 0, mac_seq = 0, mac = ?`, `UPDATE hsm_audit SET mac = ?`} {
			if _, err := f.db.Exec(ctx, q, []byte{}); err != nil {
				t.Fatal(err)
			}
		}
		if r := verify(t, f.m); r.FirstBad != 0 || r.AuthSeq != 0 || r.MACChecked {
			t.Fatalf("unauthenticated log: %+v", r)
		}
		f.login(t, "bob", bobPIN) // the first unsealed append starts authenticating
		r := verify(t, f.m)
		if r.FirstBad != 0 || !r.MACChecked || r.AuthFrom != r.HeadSeq || r.AuthSeq != r.HeadSeq {
			t.Fatalf("after the first append: %+v", r)
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
		if r := verify(t, f.m); r.FirstBad != 0 || r.AuthSeq != r.HeadSeq || r.Unauthenticated["selftest.fail"] != 1 {
			t.Fatalf("after the next append: %+v", r)
		}
	})
}
