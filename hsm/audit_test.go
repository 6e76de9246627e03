package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"strconv"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestAuditTamperIsFound(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		if _, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "a"}); err != nil {
			t.Fatal(err)
		}
		head, _, _ := db.HSMAuditHead(ctx)
		if head < 6 {
			t.Fatalf("only %d audit entries", head)
		}
		ok, err := f.m.VerifyAudit(ctx)
		if err != nil || ok.FirstBad != 0 || ok.Entries != int(head) {
			t.Fatalf("intact chain: %+v %v", ok, err)
		}
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		all, _ := db.HSMAudit(ctx, 1, 0)
		restore := func() {
			exec(`DELETE FROM hsm_audit`)
			for _, e := range all {
				exec(`INSERT INTO hsm_audit (seq, at, actor, action, object, details, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					e.Seq, storage.Micros(e.At), e.Actor, e.Action, e.Object, e.Details, append([]byte{}, e.PrevHash...), e.Hash, e.MAC)
			}
		}
		for _, c := range []struct {
			name   string
			tamper func()
			want   int64
			msg    string
		}{
			{"edit details", func() { exec(`UPDATE hsm_audit SET details = 'nothing happened' WHERE seq = 3`) }, 3, "edited"},
			{"edit actor", func() { exec(`UPDATE hsm_audit SET actor = 'someone' WHERE seq = 4`) }, 4, "edited"},
			{"edit time", func() { exec(`UPDATE hsm_audit SET at = at + 1 WHERE seq = 2`) }, 2, "edited"},
			{"delete middle", func() { exec(`DELETE FROM hsm_audit WHERE seq = 3`) }, 3, "missing"},
			{"delete tail", func() { exec(`DELETE FROM hsm_audit WHERE seq = ?`, head) }, head, "deleted from the end"},
			{"append past the head", func() {
				// A well-linked entry the head does not record: written
				// outside the HSM (an append writes both together).
				e := all[len(all)-1]
				e.Seq, e.PrevHash, e.Details = e.Seq+1, e.Hash, "forged"
				e.Hash = auditHash(e)
				exec(`INSERT INTO hsm_audit (seq, at, actor, action, object, details, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					e.Seq, storage.Micros(e.At), e.Actor, e.Action, e.Object, e.Details, e.PrevHash, e.Hash, e.MAC)
			}, head + 1, "follows the head"},
			{"reorder", func() {
				// Swap the contents of entries 2 and 3, keeping their seqs.
				a, b := all[1], all[2]
				exec(`UPDATE hsm_audit SET actor=?, action=?, object=?, details=?, prev_hash=?, hash=? WHERE seq = 2`, b.Actor, b.Action, b.Object, b.Details, b.PrevHash, b.Hash)
				exec(`UPDATE hsm_audit SET actor=?, action=?, object=?, details=?, prev_hash=?, hash=? WHERE seq = 3`, a.Actor, a.Action, a.Object, a.Details, a.PrevHash, a.Hash)
			}, 2, "link"},
			{"rehash edited entry", func() {
				// An attacker who recomputes the edited entry's hash fails
				// its MAC (and would break the next entry's link).
				e := all[2]
				e.Details = "forged"
				e.Hash = auditHash(e)
				exec(`UPDATE hsm_audit SET details = ?, hash = ? WHERE seq = 3`, e.Details, e.Hash)
			}, 3, "MAC does not verify"},
		} {
			c.tamper()
			r, err := f.m.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.FirstBad != c.want || !strings.Contains(r.Problem, c.msg) {
				t.Errorf("%s: FirstBad=%d %q, want %d containing %q", c.name, r.FirstBad, r.Problem, c.want, c.msg)
			}
			restore()
		}
		if r, _ := f.m.VerifyAudit(ctx); r.FirstBad != 0 {
			t.Fatalf("restored chain: %+v", r)
		}
	})
}

// TestVerifyAuditWhileAppending: entries appended while the log is checked
// (another node or session at work) are not taken for tampering (found by
// a review: 14 of 25 checks on a busy cluster said "NOT intact").
func TestVerifyAuditWhileAppending(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		done := make(chan struct{})
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if _, err := f.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "busy-" + strconv.Itoa(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		for range 40 {
			if r, err := f.m.VerifyAudit(ctx); err != nil || r.FirstBad != 0 {
				close(done)
				<-stopped
				t.Fatalf("check during appends: %+v %v", r, err)
			}
		}
		close(done)
		<-stopped
	})
}

func TestUsageIsSummarised(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "u"})
	if err != nil {
		t.Fatal(err)
	}
	before, _, _ := f.db.HSMAuditHead(ctx)
	d := sha256.Sum256([]byte("x"))
	for range 7 {
		if _, err := f.alice.Sign(ctx, k.ID, d[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	if after, _, _ := f.db.HSMAuditHead(ctx); after != before {
		t.Fatalf("signing wrote %d audit entries", after-before)
	}
	if ki, _ := f.alice.GetKey(ctx, k.ID); ki.Uses != 7 {
		t.Errorf("Uses = %d before the summary, want 7", ki.Uses)
	}
	if err := f.m.flushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	es, _ := f.db.HSMAudit(ctx, before+1, 0)
	if len(es) != 1 || es[0].Action != "key.usage" || !strings.Contains(es[0].Details, k.ID+"/v1=7") {
		t.Fatalf("summary entries: %+v", es)
	}
	rows, _ := f.db.HSMObject(ctx, k.ID)
	if rows[0].Uses != 7 {
		t.Errorf("stored uses %d", rows[0].Uses)
	}
	if ki, _ := f.alice.GetKey(ctx, k.ID); ki.Uses != 7 {
		t.Errorf("Uses = %d after the summary, want 7", ki.Uses)
	}
	f.alice.Sign(ctx, k.ID, d[:], crypto.SHA256)
	f.m.Close(ctx)
	rows, _ = f.db.HSMObject(ctx, k.ID)
	if rows[0].Uses != 8 {
		t.Errorf("Close did not flush: stored uses %d", rows[0].Uses)
	}
}

// TestVerifyAuditDamagedRows: a deleted head row or a non-integer seq is
// reported as tampering, not as a raw SQL error (found by a review).
func TestVerifyAuditDamagedRows(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ name, sql, want string }{
		{"head deleted", `DELETE FROM hsm_audit_head`, "audit head is missing or unreadable"},
		{"head seq not an integer", `UPDATE hsm_audit_head SET seq = 'x'`, "audit head is missing or unreadable"},
		{"entry seq not an integer", `UPDATE hsm_audit SET seq = 'x' WHERE seq = 2`, "is unreadable, edited outside the HSM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, sqliteDB(t))
			if _, err := f.db.Exec(ctx, c.sql); err != nil {
				t.Fatal(err)
			}
			r, err := f.m.VerifyAudit(ctx)
			if err != nil || r.FirstBad == 0 || !strings.Contains(r.Problem, c.want) {
				t.Fatalf("VerifyAudit: %+v %v", r, err)
			}
		})
	}
}
