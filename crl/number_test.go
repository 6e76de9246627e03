package crl_test

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/crl"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// deltaBase returns the BaseCRLNumber of a delta CRL's deltaCRLIndicator
// (RFC 5280 §5.2.4), or 0 for a complete CRL.
func deltaBase(t *testing.T, rl *x509.RevocationList) int64 {
	t.Helper()
	for _, e := range rl.Extensions {
		if e.Id.Equal(oidDelta) {
			var n int64
			if rest, err := asn1.Unmarshal(e.Value, &n); err != nil || len(rest) > 0 {
				t.Fatalf("deltaCRLIndicator %x: %v", e.Value, err)
			}
			return n
		}
	}
	return 0
}

// TestNumbersSurviveRestore: CRL numbers keep increasing, for the full and
// the delta CRL, when the database goes back to an older backup (its
// sequence lower than numbers already published), as they do after an
// upgrade from the small sequential numbers of earlier releases; each delta
// names as its base the full CRL built with it, which its number follows.
func TestNumbersSurviveRestore(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		ca := ocsptest.NewCA(t, "CRL numbers CA", nil)
		clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var served []int64 // what Options.Served was given (all calls come from Build here)
		node := func() *crl.Builder {
			b, err := crl.New(crl.Options{Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key,
				URL: "http://crl.test/int.crl", DeltaURL: "http://crl.test/int-delta.crl"}},
				Source: db, Store: db, Now: func() time.Time { return clock },
				Served: func(c storage.CRL) { served = append(served, c.Number) }})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Load(ctx); err != nil {
				t.Fatal(err)
			}
			return b
		}
		var published int64 // the highest number handed out so far
		// build makes a full and a delta CRL and checks their numbers and
		// what the delta names as its base against the signed DER.
		build := func(b *crl.Builder, newBase bool, what string) (full, delta *x509.RevocationList) {
			t.Helper()
			if err := b.Build(ctx, "int", newBase); err != nil {
				t.Fatal(err)
			}
			parse := func(c *storage.CRL) *x509.RevocationList {
				rl, err := x509.ParseRevocationList(c.DER)
				if err != nil || rl.Number.Int64() != c.Number {
					t.Fatalf("%s: CRL stored as %d: %v, %v", what, c.Number, rl.Number, err)
				}
				return rl
			}
			full, delta = parse(b.Current("int", false)), parse(b.Current("int", true))
			f, d := full.Number.Int64(), delta.Number.Int64()
			if f <= published || d <= f {
				t.Fatalf("%s: full CRL %d, delta %d after %d was published", what, f, d, published)
			}
			if full.Number.BitLen() > 159 { // RFC 5280 §5.2.3: at most 20 octets
				t.Fatalf("%s: CRL number %v too long", what, full.Number)
			}
			if newBase && deltaBase(t, delta) != f {
				t.Fatalf("%s: delta %d builds on %d, want the full CRL %d", what, d, deltaBase(t, delta), f)
			}
			if deltaBase(t, full) != 0 {
				t.Fatalf("%s: the full CRL carries a deltaCRLIndicator", what)
			}
			if len(served) < 2 || served[len(served)-2] != f || served[len(served)-1] != d {
				t.Fatalf("%s: Served was given %v, want it to end with %d, %d", what, served, f, d)
			}
			published = d
			return full, delta
		}

		// The sequence of an earlier release stood at 7.
		if _, err := db.Exec(ctx, `INSERT INTO crl_numbers (issuer_id, last_number) VALUES ('int', 7)`); err != nil {
			t.Fatal(err)
		}
		published = 7
		a := node()
		build(a, true, "after the upgrade")
		var backup int64 // the sequence when the database backup was taken
		if err := db.QueryRow(ctx, `SELECT last_number FROM crl_numbers WHERE issuer_id = 'int'`).Scan(&backup); err != nil {
			t.Fatal(err)
		}

		clock = clock.Add(10 * time.Minute)
		addCert(t, db, "a1", core.StatusValid, time.Time{}, 0)
		revoke(t, db, "a1", core.ReasonKeyCompromise)
		base, _ := build(a, true, "after the backup")
		clock = clock.Add(2 * time.Second)
		_, delta := build(a, false, "after a revocation")
		if deltaBase(t, delta) != base.Number.Int64() {
			t.Fatalf("delta after a revocation builds on %d, want the scheduled base %v", deltaBase(t, delta), base.Number)
		}

		// The database is restored from the backup: its sequence and CRLs
		// go back, the revocation is forgotten. The node starts again.
		clock = clock.Add(5 * time.Minute)
		for _, q := range []string{`UPDATE crl_numbers SET last_number = ? WHERE issuer_id = 'int'`,
			`DELETE FROM crls WHERE issuer_id = 'int' AND number > ?`} {
			if _, err := db.Exec(ctx, q, backup); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(ctx, `DELETE FROM certificates WHERE serial = 'a1'`); err != nil {
			t.Fatal(err)
		}
		restarted := node()
		build(restarted, true, "after the restore")
		clock = clock.Add(2 * time.Second)
		build(restarted, false, "after the restore, without a new base")

		// Two builds within one second still get increasing numbers.
		build(restarted, true, "in the same second")
	})
}

// TestNumbersAbovePublishedWhenClockIsBehind: after a database restore on a
// node whose clock went back, the time floor is below numbers already
// published; the number the node recorded as served (Options.Published)
// keeps the next one above them (found by a review).
func TestNumbersAbovePublishedWhenClockIsBehind(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	ctx := context.Background()
	ca := ocsptest.NewCA(t, "CRL clock CA", nil)
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var published int64
	node := func(withPublished bool) *crl.Builder {
		o := crl.Options{Issuers: []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key}},
			Source: db, Store: db, Now: func() time.Time { return clock },
			Served: func(c storage.CRL) { published = max(published, c.Number) }}
		if withPublished {
			o.Published = func(string) int64 { return published }
		}
		b, err := crl.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Load(ctx); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := node(true).Build(ctx, "int", true); err != nil {
		t.Fatal(err)
	}
	before := published
	// The database goes back to an empty backup, and the clock an hour.
	for _, q := range []string{`DELETE FROM crl_numbers`, `DELETE FROM crls`} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(-time.Hour)
	b := node(true)
	if err := b.Build(ctx, "int", true); err != nil {
		t.Fatal(err)
	}
	if n := b.Current("int", false).Number; n <= before {
		t.Fatalf("after a restore with the clock behind: CRL %d, but %d was published", n, before)
	}
}
