package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// RevokeAndBlockKey blocks the key (also of a certificate revoked for
// keyCompromise already): the renewals that carry it are revoked with it,
// one revoked for another reason gets keyCompromise as its reason (and
// each revocation is published), and nothing is issued for it again, by
// issuance, dry run or a rekeying renewal.
func TestKeyCompromiseBlocksTheKey(t *testing.T) {
	c, _ := newCA(t)
	ctx := context.Background()
	var mu sync.Mutex
	var published []core.Serial
	a, err := New(Options{CA: c, Policy: testPolicy, OnRevoke: func(_ context.Context, _ string, s core.Serial) {
		mu.Lock()
		defer mu.Unlock()
		published = append(published, s)
	}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	first, err := c.Issue(ctx, caRequest(t, key, "tls-server", 24*time.Hour, "www.corp.internal"))
	if err != nil {
		t.Fatal(err)
	}
	// A line of renewals keeps the key.
	r1, err := a.Renew(ctx, RenewRequest{Current: first.Certificate})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.Renew(ctx, RenewRequest{Current: r1.Certificate})
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := c.Issue(ctx, caRequest(t, other, "tls-server", 24*time.Hour, "api.corp.internal"))
	if err != nil {
		t.Fatal(err)
	}

	// A keyCompromise claim by someone who may revoke one certificate
	// revokes that one; the key is blocked only by RevokeAndBlockKey.
	if err := a.Revoke(ctx, r2.Serial, core.ReasonSuperseded, time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, first.Serial, core.ReasonKeyCompromise, time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := a.Certificate(ctx, r1.Serial); rec.Status != core.StatusValid {
		t.Fatalf("a plain keyCompromise revocation revoked another certificate of the key: %s", rec.Status)
	}
	mu.Lock()
	published = nil
	mu.Unlock()
	if err := a.RevokeAndBlockKey(ctx, first.Serial, time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	want := []core.Serial{first.Serial, r1.Serial, r2.Serial}
	slices.Sort(want[1:])
	mu.Lock()
	got := slices.Clone(published)
	mu.Unlock()
	if len(got) == 3 {
		slices.Sort(got[1:])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want the revoked certificate then its renewals %v", got, want)
	}
	for _, s := range want {
		rec, _ := a.Certificate(ctx, s)
		if rec.Status != core.StatusRevoked || rec.RevocationReason != core.ReasonKeyCompromise {
			t.Fatalf("%s: %s (%s), want revoked for keyCompromise", s, rec.Status, rec.RevocationReason)
		}
	}
	if rec, _ := a.Certificate(ctx, bystander.Serial); rec.Status != core.StatusValid {
		t.Fatalf("a certificate with another key is %s", rec.Status)
	}

	if _, err := a.Renew(ctx, RenewRequest{Current: r2.Certificate}); core.KindOf(err) != core.KindUnauthenticated {
		t.Fatalf("renewing the last of the line = %v, want refused as revoked", err)
	}
	req := Request{CSR: csrFor(t, key, "", "new.corp.internal"), Principal: "apikey:x"}
	if _, err := a.Issue(ctx, req); !errors.Is(err, core.ErrKeyBlocked) {
		t.Fatalf("issuing for the blocked key = %v, want ErrKeyBlocked", err)
	}
	if res, err := a.DryRun(ctx, req); err != nil || res.Allowed || res.Reason != core.DetailOf(core.ErrKeyBlocked) {
		t.Fatalf("dry run for the blocked key = %+v, %v; want refused as blocked", res, err)
	}
	if _, err := a.Renew(ctx, RenewRequest{Current: bystander.Certificate, CSR: csrFor(t, key, "", "api.corp.internal")}); !errors.Is(err, core.ErrKeyBlocked) {
		t.Fatalf("rekeying to the blocked key = %v, want ErrKeyBlocked", err)
	}
	if n, err := a.SweepBlockedKeys(ctx); n != 0 || err != nil {
		t.Fatalf("a later sweep revoked %d (%v), want nothing left", n, err)
	}
}
