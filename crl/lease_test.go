package crl_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/crl"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// recorder is a node's view of the shared database: it records every CRL
// the node stores, and with jitter it pauses after taking a CRL number, as a
// slow or busy node would, which widens the window in which two nodes
// building at once would read revocations out of number order.
type recorder struct {
	*storage.DB
	node   string
	jitter bool
	mu     *sync.Mutex
	saved  *[]savedCRL
}

type savedCRL struct {
	node string
	storage.CRL
}

func (r recorder) NextCRLNumber(ctx context.Context, issuerID string, atLeast int64) (int64, error) {
	n, err := r.DB.NextCRLNumber(ctx, issuerID, atLeast)
	if r.jitter {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	}
	return n, err
}

func (r recorder) SaveCRL(ctx context.Context, c storage.CRL) error {
	if err := r.DB.SaveCRL(ctx, c); err != nil {
		return err
	}
	r.mu.Lock()
	*r.saved = append(*r.saved, savedCRL{r.node, c})
	r.mu.Unlock()
	return nil
}

// nodes makes n Builders of issuer "int" sharing db, each recording into
// saved.
func nodes(t *testing.T, db *storage.DB, ca *ocsptest.CA, n int, jitter bool, opts crl.Options) ([]*crl.Builder, func() []savedCRL) {
	t.Helper()
	var mu sync.Mutex
	var saved []savedCRL
	var bs []*crl.Builder
	for i := range n {
		o := opts
		o.Issuers = []crl.Issuer{{ID: "int", Cert: ca.Cert, Signer: ca.Key, URL: "http://crl.test/int.crl"}}
		o.Source = db
		o.Store = recorder{DB: db, node: fmt.Sprintf("node%d", i), jitter: jitter, mu: &mu, saved: &saved}
		b, err := crl.New(o)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	return bs, func() []savedCRL {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(saved)
	}
}

func entries(t *testing.T, c storage.CRL) map[core.Serial]bool {
	t.Helper()
	rl, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		t.Fatalf("parsing CRL %d: %v", c.Number, err)
	}
	if rl.Number.Int64() != c.Number {
		t.Fatalf("CRL stored as %d says it is %v", c.Number, rl.Number)
	}
	m := map[core.Serial]bool{}
	for _, e := range rl.RevokedCertificateEntries {
		m[core.SerialFromBig(e.SerialNumber)] = true
	}
	return m
}

// TestBuildersShareLease has two Builders on one database build the same
// issuer's CRLs over and over while certificates are revoked one by one. No
// CRL may lack a revocation that a lower-numbered full CRL lists: not a
// full CRL, and not a delta together with its base.
func TestBuildersShareLease(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ca := ocsptest.NewCA(t, "lease CA", nil)
		const certs = 150
		for i := range certs {
			addCert(t, db, core.Serial(fmt.Sprintf("1%04x", i)), core.StatusValid, time.Time{}, 0)
		}
		bs, saved := nodes(t, db, ca, 2, true, crl.Options{})
		ctx := context.Background()

		revoked := make(chan struct{})
		go func() {
			defer close(revoked)
			for i := range certs {
				_, err := db.Exec(ctx, `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = 1
					WHERE serial = ?`, storage.Micros(time.Now()), fmt.Sprintf("1%04x", i))
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
			}
		}()
		var wg sync.WaitGroup
		var mu sync.Mutex
		busy, ok := map[int]int{}, map[int]int{}
		// Both nodes keep building until the revocations are done and each
		// has built at least once (bounded): one node re-taking the lease
		// at once every time would make the test prove nothing.
		deadline := time.Now().Add(20 * time.Second)
		bothBuilt := func() bool { mu.Lock(); defer mu.Unlock(); return ok[0] > 0 && ok[1] > 0 }
		for i, b := range bs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-revoked:
						if bothBuilt() || time.Now().After(deadline) {
							return
						}
					default:
					}
					err := b.Build(ctx, "int", n%4 == 0)
					if err != nil && !errors.Is(err, crl.ErrBusy) {
						t.Error(err)
						return
					}
					mu.Lock()
					if err != nil {
						busy[i]++
					} else {
						ok[i]++
					}
					mu.Unlock()
					time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if err := bs[0].Build(ctx, "int", false); err != nil {
			t.Fatal(err)
		}

		all := saved()
		byNumber := map[int64]savedCRL{}
		built := map[string]int{}
		var fulls []savedCRL
		for _, c := range all {
			if byNumber[c.Number].DER != nil {
				t.Fatalf("CRL number %d stored twice", c.Number)
			}
			byNumber[c.Number] = c
			built[c.node]++
			if !c.Delta {
				fulls = append(fulls, c)
			}
		}
		slices.SortFunc(fulls, func(a, b savedCRL) int { return int(a.Number - b.Number) })
		t.Logf("%d CRLs built (%v), lease busy %v times", len(all), built, busy)
		if built["node0"] == 0 || built["node1"] == 0 || busy[0]+busy[1] == 0 {
			t.Fatalf("the nodes did not contend: built %v, busy %v", built, busy)
		}
		if got := entries(t, fulls[len(fulls)-1].CRL); len(got) != certs {
			t.Fatalf("last full CRL lists %d of %d revocations", len(got), certs)
		}
		fullEntries := make([]map[core.Serial]bool, len(fulls))
		for i, f := range fulls {
			fullEntries[i] = entries(t, f.CRL)
			if i == 0 {
				continue
			}
			for s := range fullEntries[i-1] {
				if !fullEntries[i][s] {
					t.Fatalf("full CRL %d (%s) lacks %s, listed in full CRL %d (%s)",
						f.Number, f.node, s, fulls[i-1].Number, fulls[i-1].node)
				}
			}
		}
		for _, d := range all {
			if !d.Delta {
				continue
			}
			base, ok := byNumber[d.BaseNumber]
			if !ok || base.Delta {
				t.Fatalf("delta CRL %d builds on %d, which no node stored as a full CRL", d.Number, d.BaseNumber)
			}
			have := entries(t, d.CRL)
			for s := range entries(t, base.CRL) {
				have[s] = true
			}
			// Every full CRL numbered below the delta was read before it.
			for i, f := range fulls {
				if f.Number > d.Number {
					break
				}
				for s := range fullEntries[i] {
					if !have[s] {
						t.Fatalf("delta CRL %d (%s) with its base %d lacks %s, listed in full CRL %d (%s)",
							d.Number, d.node, base.Number, s, f.Number, f.node)
					}
				}
			}
		}
	})
}

// waitFor polls ok for up to 10 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runNode runs b until the test ends.
func runNode(t *testing.T, b *crl.Builder) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestTriggerWaitsForLease: a revocation that triggers a rebuild while
// another node holds the lease is built by this node once the lease is
// released, or once it expires when its holder never releases it.
func TestTriggerWaitsForLease(t *testing.T) {
	for _, release := range []bool{true, false} {
		name := map[bool]string{true: "released", false: "expired"}[release]
		t.Run(name, func(t *testing.T) {
			storagetest.Each(t, func(t *testing.T, db *storage.DB) {
				ctx := context.Background()
				ca := ocsptest.NewCA(t, "lease CA", nil)
				addCert(t, db, "a1", core.StatusValid, time.Time{}, 0)
				bs, saved := nodes(t, db, ca, 1, false, crl.Options{Debounce: 20 * time.Millisecond, Refresh: time.Hour})
				b := bs[0]
				runNode(t, b)
				waitFor(t, "the first CRLs", func() bool { return b.Current("int", true) != nil })
				first := len(saved())

				ttl := time.Hour
				if !release {
					ttl = 500 * time.Millisecond
				}
				// The first build releases its lease just after publishing.
				var leased time.Time
				waitFor(t, "the lease, as another node", func() bool {
					leased = time.Now()
					ok, err := db.AcquireCRLLease(ctx, "int", "other-node", ttl)
					if err != nil {
						t.Fatal(err)
					}
					return ok
				})
				revoke(t, db, "a1", core.ReasonKeyCompromise)
				b.Trigger("int")
				time.Sleep(200 * time.Millisecond) // ten debounce delays
				if n := len(saved()); n != first {
					t.Fatalf("built %d CRLs while another node held the lease", n-first)
				}
				if release {
					if err := db.ReleaseCRLLease(ctx, "int", "other-node"); err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, "the rebuild", func() bool {
					f, d := b.Current("int", false), b.Current("int", true)
					return entries(t, *f)["a1"] && entries(t, *d)["a1"]
				})
				if !release && time.Since(leased) < ttl {
					t.Fatalf("rebuilt %v after another node took a lease for %v", time.Since(leased), ttl)
				}
				var full, delta bool
				for _, c := range saved()[first:] {
					if entries(t, c.CRL)["a1"] {
						full, delta = full || !c.Delta, delta || c.Delta
					}
				}
				if !full || !delta {
					t.Fatalf("after the lease: full CRL lists a1 %v, delta %v", full, delta)
				}
				waitFor(t, "the lease released after the rebuild", func() bool {
					ok, err := db.AcquireCRLLease(ctx, "int", "third-node", time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					return ok
				})
			})
		})
	}
}
