package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestCRLLease(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		acquire := func(issuer, holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := db.AcquireCRLLease(ctx, issuer, holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		for _, step := range []struct {
			name           string
			issuer, holder string
			want           bool
		}{
			{"free lease", "int", "a", true},
			{"held by another", "int", "b", false},
			{"renewed by its holder", "int", "a", true},
			{"still held by a", "int", "b", false},
			{"leases are per issuer", "other", "b", true},
		} {
			if got := acquire(step.issuer, step.holder, time.Minute); got != step.want {
				t.Fatalf("%s: %s acquires %s = %v, want %v", step.name, step.holder, step.issuer, got, step.want)
			}
		}

		// Release: only by the holder; then another takes it at once.
		if err := db.ReleaseCRLLease(ctx, "int", "b"); err != nil {
			t.Fatal(err)
		}
		if acquire("int", "b", time.Minute) {
			t.Fatal("b released a's lease")
		}
		if err := db.ReleaseCRLLease(ctx, "int", "a"); err != nil {
			t.Fatal(err)
		}
		if !acquire("int", "b", time.Minute) {
			t.Fatal("released lease not free")
		}
		if err := db.ReleaseCRLLease(ctx, "int", "a"); err != nil {
			t.Fatalf("releasing a lease not held: %v", err)
		}
		if acquire("int", "a", time.Minute) {
			t.Fatal("a's stale release freed b's lease")
		}

		// Take-over after expiry.
		if !acquire("short", "a", 20*time.Millisecond) {
			t.Fatal("free lease refused")
		}
		if acquire("short", "b", time.Minute) {
			t.Fatal("b took a running lease")
		}
		time.Sleep(40 * time.Millisecond)
		if !acquire("short", "b", time.Minute) {
			t.Fatal("b cannot take over an expired lease")
		}
		if acquire("short", "a", time.Minute) {
			t.Fatal("a took back its expired lease after b took it over")
		}

		if _, err := db.AcquireCRLLease(ctx, "int", "", time.Minute); err == nil {
			t.Error("empty holder accepted")
		}
		if _, err := db.AcquireCRLLease(ctx, "int", "a", 0); err == nil {
			t.Error("zero ttl accepted")
		}
	})
}

// TestCRLLeaseRace has many holders race for a free lease, then for an
// expired one: each time exactly one wins.
func TestCRLLeaseRace(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		for round := 0; round < 20; round++ {
			issuer := fmt.Sprintf("race%d", round)
			if round%2 == 1 { // race for an expired lease
				if ok, err := db.AcquireCRLLease(ctx, issuer, "stale", time.Millisecond); !ok || err != nil {
					t.Fatalf("stale lease: %v, %v", ok, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var winners []string
			for i := 0; i < 8; i++ {
				holder := fmt.Sprintf("h%d", i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := db.AcquireCRLLease(ctx, issuer, holder, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						mu.Lock()
						winners = append(winners, holder)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("round %d: winners %v, want exactly one", round, winners)
			}
		}
	})
}

// BenchmarkCRLLease measures what the lease adds to every CRL build: one
// acquire and one release (a build also renews once, before its delta).
func BenchmarkCRLLease(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			var db *storage.DB
			if dialect == "sqlite" {
				db, _ = storagetest.SQLite(b)
			} else {
				db = storagetest.Postgres(b)
			}
			ctx := context.Background()
			for b.Loop() {
				if ok, err := db.AcquireCRLLease(ctx, "int", "bench", time.Minute); !ok || err != nil {
					b.Fatal(ok, err)
				}
				if err := db.ReleaseCRLLease(ctx, "int", "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
