package storage_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestIdempotencyKeys: claim, stand, finish, release, take over when
// abandoned or expired, prune — on SQLite and PostgreSQL.
func TestIdempotencyKeys(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		abandoned, expired := now.Add(-5*time.Minute), now.Add(-24*time.Hour)
		claim := func(p, k string, h []byte, at time.Time) *storage.IdempotencyRecord {
			t.Helper()
			r, err := db.ClaimIdempotencyKey(ctx, p, k, h, at, abandoned, expired, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := claim("p1", "k", []byte("h1"), now); r != nil {
			t.Fatalf("new key: %+v", r)
		}
		if r := claim("p1", "k", []byte("h1"), now); r == nil || r.Serial != "" || !bytes.Equal(r.RequestHash, []byte("h1")) {
			t.Fatalf("key in progress: %+v", r)
		}
		if r := claim("p2", "k", []byte("h2"), now); r != nil {
			t.Fatalf("another principal's key: %+v", r)
		}
		if err := db.FinishIdempotencyKey(ctx, "p1", "k", core.Serial("0a")); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseIdempotencyKey(ctx, "p1", "k"); err != nil { // finished: stays
			t.Fatal(err)
		}
		if r := claim("p1", "k", []byte("h1"), now); r == nil || r.Serial != "0a" {
			t.Fatalf("finished key: %+v", r)
		}
		if err := db.ReleaseIdempotencyKey(ctx, "p2", "k"); err != nil {
			t.Fatal(err)
		}
		if r := claim("p2", "k", []byte("h3"), now); r != nil {
			t.Fatalf("released key: %+v", r)
		}
		// An unfinished claim older than the abandon time is taken over; a
		// finished one stands until it expires.
		if r := claim("p3", "old", []byte("h"), now.Add(-time.Hour)); r != nil {
			t.Fatal("new")
		}
		if r := claim("p3", "old", []byte("new"), now); r != nil {
			t.Fatalf("abandoned claim not taken over: %+v", r)
		}
		if r := claim("p3", "done", []byte("h"), now.Add(-time.Hour)); r != nil {
			t.Fatal("new")
		}
		db.FinishIdempotencyKey(ctx, "p3", "done", core.Serial("0b"))
		if r := claim("p3", "done", []byte("h"), now); r == nil || r.Serial != "0b" {
			t.Fatalf("finished claim within a day: %+v", r)
		}
		if r, err := db.ClaimIdempotencyKey(ctx, "p3", "done", []byte("h"), now.Add(25*time.Hour), abandoned, now.Add(time.Hour), time.Time{}); err != nil || r != nil {
			t.Fatalf("expired key not taken over: %+v %v", r, err)
		}
		// A claim kept until a date (a renewal, until the renewed
		// certificate expires) stands past the day, and is not pruned,
		// until then.
		until := now.Add(90 * 24 * time.Hour)
		if r, err := db.ClaimIdempotencyKey(ctx, "renewal:0c", "renewal", []byte("h"), now, abandoned, expired, until); err != nil || r != nil {
			t.Fatalf("new kept claim: %+v %v", r, err)
		}
		db.FinishIdempotencyKey(ctx, "renewal:0c", "renewal", core.Serial("0d"))
		later := now.Add(30 * 24 * time.Hour)
		if r, err := db.ClaimIdempotencyKey(ctx, "renewal:0c", "renewal", []byte("other"), later, later.Add(-5*time.Minute), later.Add(-24*time.Hour), until); err != nil || r == nil || r.Serial != "0d" {
			t.Fatalf("a kept claim a month on: %+v %v; want it standing", r, err)
		}
		n, err := db.PruneIdempotencyKeys(ctx, now.Add(time.Minute), now)
		if err != nil || n != 3 { // p1/k, p2/k, p3/old (p3/done was re-claimed later); not the kept one
			t.Fatalf("pruned %d, %v; want 3", n, err)
		}
		if n, err := db.PruneIdempotencyKeys(ctx, later, later); err != nil || n != 1 { // p3/done
			t.Fatalf("pruned %d, %v a month on; want 1 (not the kept claim)", n, err)
		}
		// A renewal claim written by a node on the previous release
		// (keep_until 0) is given its certificate's end before pruning.
		certEnd := now.Add(60 * 24 * time.Hour).Truncate(time.Second)
		renewed := issue(t, db, "i1", []string{"r.example"}, certEnd)
		if r, err := db.ClaimIdempotencyKey(ctx, "renew:"+string(renewed), storage.RenewalKey, []byte("h"), now, abandoned, expired, time.Time{}); err != nil || r != nil {
			t.Fatalf("an old-style renewal claim: %+v %v", r, err)
		}
		db.FinishIdempotencyKey(ctx, "renew:"+string(renewed), storage.RenewalKey, core.Serial("0e"))
		if n, err := db.PruneIdempotencyKeys(ctx, later, later); err != nil || n != 0 {
			t.Fatalf("pruned %d, %v a month on; want the old-style renewal claim kept", n, err)
		}
		if r, err := db.ClaimIdempotencyKey(ctx, "renew:"+string(renewed), storage.RenewalKey, []byte("other"), later, later.Add(-5*time.Minute), later.Add(-24*time.Hour), time.Time{}); err != nil || r == nil {
			t.Fatalf("an old-style renewal claim a month on: %+v %v; want it standing", r, err)
		}
		past := until.Add(time.Minute)
		if r, err := db.ClaimIdempotencyKey(ctx, "renewal:0c", "renewal", []byte("other"), past, past.Add(-5*time.Minute), past.Add(-24*time.Hour), time.Time{}); err != nil || r != nil {
			t.Fatalf("a kept claim after its date: %+v %v; want it taken over", r, err)
		}
	})
}
