package ca

import (
	"context"
	"sync"
	"testing"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestSerialPool issues concurrently through a small pool (several
// refills) on both databases through the CertWriter: every serial is issued
// once, every issued serial's row is valid with its profile and requester
// filled in at intent time, and the pool's unused reservations have no TBS.
func TestSerialPool(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		w := storage.NewCertWriter(db)
		defer w.Close()
		c, _, inter := newTestCA(t, w, func(o *Options) { o.SerialPool = 5 })
		if c.pool == nil {
			t.Fatal("the CertWriter is a BatchReserver; the pool should be on")
		}
		csr := makeCSR(t, testKey(t, "p256"), "a.example", "a.example")
		ctx := context.Background()
		var mu sync.Mutex
		seen := map[core.Serial]bool{}
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 4; i++ {
					iss, err := c.Issue(ctx, Request{CSR: csr, Profile: "tls-client", Requester: "pooltest", CSRChecked: true})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[iss.Serial] {
						t.Errorf("serial %s issued twice", iss.Serial)
					}
					seen[iss.Serial] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != 24 {
			t.Fatalf("%d distinct serials, want 24", len(seen))
		}
		for s := range seen {
			r, err := db.GetCertificate(ctx, s)
			if err != nil || r.Status != core.StatusValid || r.Profile != "tls-client" || r.Requester != "pooltest" || r.IssuerID != inter.ID() {
				t.Fatalf("row of %s: %+v, %v", s, r, err)
			}
		}
		var intents, pooled int
		db.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE status = ? AND tbs IS NOT NULL`, string(core.StatusReserved)).Scan(&intents)
		db.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE status = ? AND tbs IS NULL AND profile = '' AND requester = ''`, string(core.StatusReserved)).Scan(&pooled)
		if intents != 0 || pooled < 1 || pooled > 5*6 {
			t.Fatalf("%d reserved rows with an intent (want 0), %d unused pooled reservations", intents, pooled)
		}
		// An intent for another issuer's reserved serial is refused.
		s, err := c.pool.take(ctx, inter.ID())
		if err != nil {
			t.Fatal(err)
		}
		err = db.RecordIntent(ctx, &core.Certificate{Serial: s, IssuerID: "someone-else", Profile: "x", Requester: "y", TBS: []byte{1}}, c.now())
		if core.KindOf(err) != core.KindConflict {
			t.Fatalf("intent for another issuer's serial: %v", err)
		}
	})
}
