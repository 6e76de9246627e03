package crl

import (
	"context"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestScheduledSharedByNodes: a node skips its scheduled build when another
// node built a full CRL within the last half interval, and takes that CRL as
// its delta base; the node whose own CRL is served always builds, as does a
// node whose last picked-up CRL is older; a node whose lease is busy skips.
func TestScheduledSharedByNodes(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ca := ocsptest.NewCA(t, "schedule CA", nil)
	ctx := context.Background()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	node := func() *Builder {
		b, err := New(Options{Issuers: []Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key}}, Source: db, Store: db,
			Interval: time.Hour, Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := node(), node()
	latest := func() int64 {
		t.Helper()
		n, err := db.LatestCRLNumber(ctx, "int", false)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := a.Build(ctx, "int", true); err != nil {
		t.Fatal(err)
	}
	built := latest()

	clock = clock.Add(10 * time.Minute)
	b.pickUp(ctx)
	b.scheduled(ctx, b.issuers["int"])
	if n := latest(); n != built {
		t.Fatalf("b built full CRL %d 10 minutes after a built %d", n, built)
	}
	if base := b.issuers["int"].base.Load(); base == nil || base.Number != built {
		t.Fatalf("b's delta base is %+v, want a's CRL %d", base, built)
	}

	a.scheduled(ctx, a.issuers["int"]) // a serves its own CRL: it builds
	if n := latest(); n <= built {
		t.Fatalf("a did not build on schedule (latest %d)", n)
	}
	built = latest()

	clock = clock.Add(40 * time.Minute)
	b.pickUp(ctx)
	b.scheduled(ctx, b.issuers["int"])
	if n := latest(); n <= built {
		t.Fatalf("b skipped its schedule though a's CRL is 40 minutes old")
	}
	built = latest()

	if ok, err := db.AcquireCRLLease(ctx, "int", "other-node", time.Minute); !ok || err != nil {
		t.Fatalf("taking the lease: %v, %v", ok, err)
	}
	clock = clock.Add(time.Hour)
	b.scheduled(ctx, b.issuers["int"])
	if n := latest(); n != built {
		t.Fatalf("b built CRL %d while another node held the lease", n)
	}
}
