package storage_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestACMERecovery: work left processing is found once it is older than the
// cutoff (or released), only on its endpoint, and taken over by exactly
// one of several concurrent claimers.
func TestACMERecovery(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := db.CreateACMEAccount(ctx, &storage.ACMEAccount{ID: "a", Endpoint: "ep", Thumbprint: "t",
			JWK: []byte(`{}`), Status: "valid", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"old", "fresh", "released", "done"} {
			if err := db.CreateACMEOrder(ctx, &storage.ACMEOrder{ID: id, Endpoint: "ep", AccountID: "a", Status: "pending",
				Identifiers: []storage.ACMEIdentifier{{Type: "dns", Value: id + ".example.com"}}, Expires: now.Add(time.Hour), CreatedAt: now,
				Authzs: []storage.ACMEAuthz{{ID: id + "-z", Identifier: storage.ACMEIdentifier{Type: "dns", Value: id + ".example.com"},
					Status: "pending", Expires: now.Add(time.Hour),
					Challenges: []storage.ACMEChallenge{{ID: id + "-c", Type: "http-01", Token: "tok", Status: "pending"}}}},
			}); err != nil {
				t.Fatal(err)
			}
		}
		start := map[string]time.Time{"old": now.Add(-time.Hour), "fresh": now, "released": {}, "done": now.Add(-time.Hour)}
		for id, at := range start {
			if ok, err := db.StartACMEChallenge(ctx, id+"-c", at); !ok || err != nil {
				t.Fatalf("start %s: %v %v", id, ok, err)
			}
			if ok, err := db.StartACMEFinalize(ctx, "ep", id, at); !ok || err != nil {
				t.Fatalf("finalize %s: %v %v", id, ok, err)
			}
		}
		if ok, _ := db.StartACMEChallenge(ctx, "old-c", now); ok {
			t.Fatal("a processing challenge was started again")
		}
		if ok, _ := db.StartACMEFinalize(ctx, "ep", "old", now); ok {
			t.Fatal("a processing order was finalized again")
		}
		// "done" settles before anyone looks.
		if ok, err := db.SettleACMEChallenge(ctx, "ep", "done-z", "done-c", "processing", "valid", now, nil); !ok || err != nil {
			t.Fatalf("settle: %v %v", ok, err)
		}
		if err := db.FinishACMEOrder(ctx, &storage.ACMECert{Serial: "ab", Endpoint: "ep", AccountID: "a", OrderID: "done",
			Chains: []string{"pem"}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		cutoff := now.Add(-time.Minute)
		chs, err := db.StaleACMEChallenges(ctx, "ep", cutoff, 10)
		if err != nil || len(chs) != 2 || chs[0].ID != "released-c" || !chs[0].Since.IsZero() || chs[1].ID != "old-c" || !chs[1].Since.Equal(start["old"]) {
			t.Fatalf("stale challenges = %+v, %v", chs, err)
		}
		if other, err := db.StaleACMEChallenges(ctx, "other", cutoff, 10); err != nil || len(other) != 0 {
			t.Fatalf("another endpoint's stale challenges = %+v, %v", other, err)
		}
		if one, _ := db.StaleACMEChallenges(ctx, "ep", cutoff, 1); len(one) != 1 {
			t.Fatalf("limit 1 gave %d", len(one))
		}
		orders, err := db.StaleACMEOrders(ctx, "ep", cutoff, 10)
		if err != nil || len(orders) != 2 || orders[0].ID != "released" || orders[1].ID != "old" {
			t.Fatalf("stale orders = %+v, %v", orders, err)
		}
		// Eight nodes claim the old challenge at once: one wins, and it is
		// then no longer stale.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := db.ClaimACMEChallenge(ctx, "old-c", start["old"], now.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d claims won, want 1", wins.Load())
		}
		if chs, _ := db.StaleACMEChallenges(ctx, "ep", cutoff, 10); len(chs) != 1 || chs[0].ID != "released-c" {
			t.Fatalf("after the claim, stale = %+v", chs)
		}
		// Released at shutdown: since becomes zero, stale at once.
		if ok, err := db.ReleaseACMEChallenge(ctx, "fresh-c"); !ok || err != nil {
			t.Fatalf("release: %v %v", ok, err)
		}
		if ok, _ := db.ReleaseACMEChallenge(ctx, "done-c"); ok {
			t.Fatal("released a settled challenge")
		}
		if chs, _ := db.StaleACMEChallenges(ctx, "ep", cutoff, 10); len(chs) != 2 {
			t.Fatalf("after release, stale = %+v", chs)
		}
		// Abandoning needs the same start time the finder saw.
		if ok, _ := db.AbandonACMEOrder(ctx, "ep", "old", now, []byte(`{}`)); ok {
			t.Fatal("abandoned an order with another start time")
		}
		if ok, err := db.AbandonACMEOrder(ctx, "ep", "old", start["old"], []byte(`{"type":"x"}`)); !ok || err != nil {
			t.Fatalf("abandon: %v %v", ok, err)
		}
		if ok, _ := db.AbandonACMEOrder(ctx, "ep", "done", start["done"], []byte(`{}`)); ok {
			t.Fatal("abandoned a valid order")
		}
		o, err := db.ACMEOrder(ctx, "ep", "old")
		if err != nil || o.Status != "invalid" || string(o.Error) != `{"type":"x"}` {
			t.Fatalf("abandoned order = %+v, %v", o, err)
		}
	})
}
