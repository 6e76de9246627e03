package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestACMEAccounts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		if err := db.CreateACMEEABKey(ctx, "kid1", "ep", []string{"team.example", "10.0.0.0/8"}, now); err != nil {
			t.Fatal(err)
		}
		a := &storage.ACMEAccount{ID: "a1", Endpoint: "ep", Thumbprint: "t1", JWK: []byte(`{"kty":"EC"}`),
			Status: "valid", Contact: []string{"mailto:a@example.com"}, EABKID: "kid1", CreatedAt: now}
		if err := db.CreateACMEAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		dup := *a
		dup.ID, dup.EABKID = "a2", ""
		if err := db.CreateACMEAccount(ctx, &dup); core.KindOf(err) != core.KindConflict {
			t.Fatalf("same key twice: %v, want conflict", err)
		}
		reuse := storage.ACMEAccount{ID: "a3", Endpoint: "ep", Thumbprint: "t3", JWK: []byte(`{}`), Status: "valid",
			EABKID: "kid1", CreatedAt: now}
		if err := db.CreateACMEAccount(ctx, &reuse); core.KindOf(err) != core.KindForbidden {
			t.Fatalf("EAB key bound twice: %v, want forbidden", err)
		}
		if _, err := db.ACMEAccount(ctx, "ep", "a3"); !core.IsNotFound(err) {
			t.Fatalf("failed EAB bind left an account: %v", err)
		}
		got, err := db.ACMEAccountByThumbprint(ctx, "ep", "t1")
		if err != nil || got.ID != "a1" || !got.CreatedAt.Equal(now) || got.Contact[0] != "mailto:a@example.com" {
			t.Fatalf("by thumbprint = %+v, %v", got, err)
		}
		if _, err := db.ACMEAccount(ctx, "other", "a1"); !core.IsNotFound(err) {
			t.Fatalf("other endpoint sees account: %v", err)
		}
		k, err := db.ACMEEABKey(ctx, "kid1")
		if err != nil || k.AccountID != "a1" || strings.Join(k.Names, ",") != "team.example,10.0.0.0/8" {
			t.Fatalf("EAB key = %+v, %v", k, err)
		}
		if err := db.CreateACMEAccount(ctx, &storage.ACMEAccount{ID: "b", Endpoint: "ep", Thumbprint: "tb",
			JWK: []byte(`{}`), Status: "valid", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if other, err := db.ChangeACMEAccountKey(ctx, "ep", "a1", "t1", "tb", []byte(`{}`)); core.KindOf(err) != core.KindConflict || other != "b" {
			t.Fatalf("key change to a used key: %q %v", other, err)
		}
		if _, err := db.ChangeACMEAccountKey(ctx, "ep", "a1", "t1", "tnew", []byte(`{"new":1}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ChangeACMEAccountKey(ctx, "ep", "a1", "t1", "tnew2", []byte(`{}`)); core.KindOf(err) != core.KindConflict {
			t.Fatalf("stale old key: %v", err)
		}
		if err := db.UpdateACMEAccount(ctx, "ep", "a1", "deactivated", nil); err != nil {
			t.Fatal(err)
		}
		if err := db.UpdateACMEAccount(ctx, "ep", "a1", "valid", nil); core.KindOf(err) != core.KindConflict {
			t.Fatalf("reactivating: %v", err)
		}
		if err := db.RevokeACMEEABKey(ctx, "ep", "kid1", now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeACMEEABKey(ctx, "ep", "nope", now); !core.IsNotFound(err) {
			t.Fatalf("revoking unknown kid: %v", err)
		}
		keys, err := db.ACMEEABKeys(ctx, "ep")
		if err != nil || len(keys) != 1 || keys[0].RevokedAt.IsZero() || len(keys[0].Names) != 2 {
			t.Fatalf("EAB keys = %+v, %v", keys, err)
		}
	})
}

func TestACMEOrders(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := db.CreateACMEAccount(ctx, &storage.ACMEAccount{ID: "a", Endpoint: "ep", Thumbprint: "t",
			JWK: []byte(`{}`), Status: "valid", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for i, id := range []string{"o1", "o2"} {
			o := &storage.ACMEOrder{ID: id, Endpoint: "ep", AccountID: "a", Status: "pending",
				Identifiers: []storage.ACMEIdentifier{{Type: "dns", Value: "*.example.com"}},
				Expires:     now.Add(time.Hour), CreatedAt: now.Add(time.Duration(i) * time.Second), Replaces: "x.y",
				Authzs: []storage.ACMEAuthz{{ID: id + "-z", Identifier: storage.ACMEIdentifier{Type: "dns", Value: "example.com"},
					Wildcard: true, Status: "pending", Expires: now.Add(time.Hour),
					Challenges: []storage.ACMEChallenge{{ID: id + "-c", Type: "dns-01", Token: "tok", Status: "pending"}}}},
			}
			if err := db.CreateACMEOrder(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		o, err := db.ACMEOrder(ctx, "ep", "o1")
		if err != nil || len(o.Authzs) != 1 || !o.Authzs[0].Wildcard || o.Identifiers[0].Value != "*.example.com" {
			t.Fatalf("order = %+v, %v", o, err)
		}
		ids, err := db.ACMEOrderIDs(ctx, "ep", "a", "", now, 1)
		if err != nil || len(ids) != 1 || ids[0] != "o2" {
			t.Fatalf("first page = %v, %v", ids, err)
		}
		ids, err = db.ACMEOrderIDs(ctx, "ep", "a", "o2", now, 10)
		if err != nil || len(ids) != 1 || ids[0] != "o1" {
			t.Fatalf("second page = %v, %v", ids, err)
		}
		if ids, err := db.ACMEOrderIDs(ctx, "ep", "a", "", now.Add(time.Hour), 10); err != nil || len(ids) != 0 {
			t.Fatalf("expired pending orders listed: %v, %v", ids, err)
		}
		if _, err := db.ACMEOrderIDs(ctx, "ep", "other-account", "o1", now, 10); !core.IsNotFound(err) {
			t.Fatalf("another account's order as the cursor: %v, want not found", err)
		}
		az, err := db.ACMEAuthzByChallenge(ctx, "ep", "o1-c")
		if err != nil || az.ID != "o1-z" || len(az.Challenges) != 1 {
			t.Fatalf("authz by challenge = %+v, %v", az, err)
		}
		if _, err := db.ACMEAuthzByChallenge(ctx, "other", "o1-c"); !core.IsNotFound(err) {
			t.Fatalf("authz by challenge of another endpoint: %v", err)
		}
		if ok, err := db.SetACMEChallengeStatus(ctx, "o1-c", "pending", "valid", now, nil); !ok || err != nil {
			t.Fatalf("challenge → valid: %v %v", ok, err)
		}
		if ok, _ := db.SetACMEChallengeStatus(ctx, "o1-c", "pending", "invalid", now, []byte(`{}`)); ok {
			t.Fatal("challenge moved twice from pending")
		}
		if ok, err := db.SetACMEAuthzStatus(ctx, "ep", "o1-z", "pending", "valid"); !ok || err != nil {
			t.Fatalf("authz → valid: %v %v", ok, err)
		}
		az, err = db.ACMEAuthz(ctx, "ep", "o1-z")
		if err != nil || az.Status != "valid" || az.Challenges[0].Status != "valid" || !az.Challenges[0].Validated.Equal(now) {
			t.Fatalf("authz = %+v, %v", az, err)
		}
		names, err := db.ValidACMEIdentifiers(ctx, "ep", "a", now)
		if err != nil || len(names) != 1 || names[0].Value != "*.example.com" {
			t.Fatalf("valid identifiers = %v, %v", names, err)
		}
		if err := db.FinishACMEOrder(ctx, &storage.ACMECert{Serial: "ab", Endpoint: "ep", AccountID: "a", OrderID: "o1",
			Chains: []string{"pem"}, CreatedAt: now}); core.KindOf(err) != core.KindConflict {
			t.Fatalf("finishing a pending order: %v", err)
		}
		if ok, err := db.SetACMEOrderStatus(ctx, "ep", "o1", "pending", "processing", nil); !ok || err != nil {
			t.Fatalf("order → processing: %v %v", ok, err)
		}
		if err := db.FinishACMEOrder(ctx, &storage.ACMECert{Serial: "ab", Endpoint: "ep", AccountID: "a", OrderID: "o1",
			Chains: []string{"pem1", "pem2"}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		c, err := db.ACMECert(ctx, "ep", "ab")
		if err != nil || len(c.Chains) != 2 || c.OrderID != "o1" {
			t.Fatalf("cert = %+v, %v", c, err)
		}
		if rep, err := db.ACMEOrderReplacing(ctx, "ep", "x.y"); !rep || err != nil {
			t.Fatalf("replacing = %v, %v", rep, err)
		}
		if _, err := db.ACMEOrder(ctx, "other", "o1"); !core.IsNotFound(err) {
			t.Fatalf("other endpoint sees order: %v", err)
		}
		// One query: the authorization of a challenge, with its challenges.
		if az, err := db.ACMEAuthzByChallenge(ctx, "ep", "o2-c"); err != nil || az.ID != "o2-z" ||
			len(az.Challenges) != 1 || az.Challenges[0].AuthzID != "o2-z" || az.Status != "pending" {
			t.Fatalf("authz by challenge = %+v, %v", az, err)
		}
		if _, err := db.ACMEAuthzByChallenge(ctx, "other", "o2-c"); !core.IsNotFound(err) {
			t.Fatalf("other endpoint sees the challenge: %v", err)
		}
		if _, err := db.ACMEAuthz(ctx, "ep", "nope"); !core.IsNotFound(err) {
			t.Fatalf("missing authz: %v", err)
		}
		// Settling moves challenge and authorization together, once.
		prob := []byte(`{"type":"urn:ietf:params:acme:error:incorrectResponse"}`)
		if ok, err := db.SettleACMEChallenge(ctx, "ep", "o2-z", "o2-c", "processing", "invalid", time.Time{}, prob); ok || err != nil {
			t.Fatalf("settling from the wrong status: %v %v", ok, err)
		}
		if ok, err := db.SettleACMEChallenge(ctx, "ep", "o1-z", "o2-c", "pending", "invalid", time.Time{}, prob); ok || err != nil {
			t.Fatalf("settling under another authorization: %v %v", ok, err)
		}
		if ok, err := db.SettleACMEChallenge(ctx, "ep", "o2-z", "o2-c", "pending", "invalid", time.Time{}, prob); !ok || err != nil {
			t.Fatalf("settle: %v %v", ok, err)
		}
		if ok, _ := db.SettleACMEChallenge(ctx, "ep", "o2-z", "o2-c", "pending", "valid", now, nil); ok {
			t.Fatal("settled twice")
		}
		az, err = db.ACMEAuthz(ctx, "ep", "o2-z")
		if err != nil || az.Status != "invalid" || az.Challenges[0].Status != "invalid" || string(az.Challenges[0].Error) != string(prob) {
			t.Fatalf("settled authz = %+v, %v", az, err)
		}
	})
}

// TestDeactivateACMEAuthz: deactivating a valid authorization also
// deactivates the account's valid authorizations that copied its
// validation (same valid challenge token), and nothing else.
func TestDeactivateACMEAuthz(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, acct := range []string{"a", "b"} {
			if err := db.CreateACMEAccount(ctx, &storage.ACMEAccount{ID: acct, Endpoint: "ep", Thumbprint: acct,
				JWK: []byte(`{}`), Status: "valid", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		// authz id → account, status, token of its one challenge
		authzs := []struct{ id, acct, status, token string }{
			{"orig", "a", "valid", "t1"}, {"copy1", "a", "valid", "t1"}, {"copy2", "a", "valid", "t1"},
			{"own", "a", "valid", "t2"}, {"pend", "a", "pending", "t3"}, {"other", "b", "valid", "t1"},
		}
		for _, z := range authzs {
			id := storage.ACMEIdentifier{Type: "dns", Value: "x.example.com"}
			if err := db.CreateACMEOrder(ctx, &storage.ACMEOrder{ID: "o-" + z.id, Endpoint: "ep", AccountID: z.acct,
				Status: "pending", Identifiers: []storage.ACMEIdentifier{id}, Expires: now.Add(time.Hour), CreatedAt: now,
				Authzs: []storage.ACMEAuthz{{ID: z.id, Identifier: id, Status: z.status, Expires: now.Add(time.Hour),
					Challenges: []storage.ACMEChallenge{{ID: z.id + "-c", Type: "http-01", Token: z.token, Status: z.status}}}},
			}); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := db.DeactivateACMEAuthz(ctx, "ep", "copy1", "pending"); ok || err != nil {
			t.Fatalf("deactivating from the wrong status: %v %v", ok, err)
		}
		if ok, err := db.DeactivateACMEAuthz(ctx, "ep", "copy1", "valid"); !ok || err != nil {
			t.Fatalf("deactivate: %v %v", ok, err)
		}
		want := map[string]string{"orig": "deactivated", "copy1": "deactivated", "copy2": "deactivated",
			"own": "valid", "pend": "pending", "other": "valid"}
		for id, st := range want {
			if a, err := db.ACMEAuthz(ctx, "ep", id); err != nil || a.Status != st {
				t.Errorf("%s: %+v %v, want %s", id, a, err, st)
			}
		}
		if ok, err := db.DeactivateACMEAuthz(ctx, "ep", "pend", "pending"); !ok || err != nil {
			t.Fatalf("deactivate pending: %v %v", ok, err)
		}
	})
}

// TestACMEOrderAfterDeactivation: an order whose account was deactivated
// after its request was verified (the account read as valid) is not
// created, nor its authorizations; an order of a valid account is.
func TestACMEOrderAfterDeactivation(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, id := range []string{"a", "b"} {
			if err := db.CreateACMEAccount(ctx, &storage.ACMEAccount{ID: id, Endpoint: "ep", Thumbprint: id,
				JWK: []byte(`{}`), Status: "valid", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.UpdateACMEAccount(ctx, "ep", "a", "deactivated", nil); err != nil {
			t.Fatal(err)
		}
		order := func(id, acct string) *storage.ACMEOrder {
			ident := storage.ACMEIdentifier{Type: "dns", Value: id + ".example.com"}
			return &storage.ACMEOrder{ID: id, Endpoint: "ep", AccountID: acct, Status: "pending",
				Identifiers: []storage.ACMEIdentifier{ident}, Expires: now.Add(time.Hour), CreatedAt: now,
				Authzs: []storage.ACMEAuthz{{ID: id + "-z", Identifier: ident, Status: "pending", Expires: now.Add(time.Hour),
					Challenges: []storage.ACMEChallenge{{ID: id + "-c", Type: "http-01", Token: "tok", Status: "pending"}}}}}
		}
		err := db.CreateACMEOrder(ctx, order("late", "a"))
		if core.KindOf(err) != core.KindForbidden {
			t.Fatalf("order of a deactivated account: %v, want KindForbidden", err)
		}
		if _, err := db.ACMEOrder(ctx, "ep", "late"); !core.IsNotFound(err) {
			t.Fatalf("the refused order was stored: %v", err)
		}
		if _, err := db.ACMEAuthz(ctx, "ep", "late-z"); !core.IsNotFound(err) {
			t.Fatalf("the refused order's authorization was stored: %v", err)
		}
		if err := db.CreateACMEOrder(ctx, order("ok", "b")); err != nil {
			t.Fatalf("order of a valid account: %v", err)
		}
		// The account is on another endpoint there: no order either.
		o := order("elsewhere", "b")
		o.Endpoint = "other"
		if err := db.CreateACMEOrder(ctx, o); core.KindOf(err) != core.KindForbidden {
			t.Fatalf("order under another endpoint's account: %v", err)
		}
	})
}
