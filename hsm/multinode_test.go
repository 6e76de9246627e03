package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// nodes is one keystore database opened by two modules, as two `ca serve`
// nodes open it: each node its own connection pool and its own key cache.
type nodes struct {
	*fixture            // node A
	b        *Module    // node B
	bAlice   *Session   // alice logged in on node B
	storeB   *hookStore // node B's store
	dialect  storage.Dialect
	dsn      string // opens the keystore database again (another node)
}

// hookStore runs a hook before its next keystore write, to put another
// node's change between a node's read and its write.
type hookStore struct {
	Store
	mu          sync.Mutex
	beforeApply func()
}

func (h *hookStore) ApplyHSM(ctx context.Context, ch storage.HSMChange) error {
	h.mu.Lock()
	f := h.beforeApply
	h.beforeApply = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Store.ApplyHSM(ctx, ch)
}

func (h *hookStore) setBeforeApply(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beforeApply = f
}

// eachTwoNodes runs fn against two nodes sharing a SQLite file and two nodes
// sharing a PostgreSQL schema.
func eachTwoNodes(t *testing.T, fn func(t *testing.T, n *nodes)) {
	t.Run("sqlite", func(t *testing.T) {
		dbA, path := storagetest.SQLite(t)
		fn(t, twoNodes(t, dbA, storage.SQLite, path))
	})
	t.Run("postgres", func(t *testing.T) {
		dbA := storagetest.Postgres(t)
		var schema string
		if err := dbA.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatal(err)
		}
		sep := "?"
		if strings.Contains(storagetest.PostgresURL(), "?") {
			sep = "&"
		}
		fn(t, twoNodes(t, dbA, storage.Postgres, storagetest.PostgresURL()+sep+"search_path="+schema))
	})
}

func twoNodes(t *testing.T, dbA *storage.DB, dialect storage.Dialect, dsn string) *nodes {
	t.Helper()
	dbB, err := storage.Open(context.Background(), dialect, dsn)
	if err != nil {
		t.Fatalf("opening the database for node B: %v", err)
	}
	t.Cleanup(func() { dbB.Close() })
	n := &nodes{fixture: setup(t, dbA), storeB: &hookStore{Store: dbB}, dialect: dialect, dsn: dsn}
	n.b = newModule(t, n.storeB)
	if err := n.b.Unseal(context.Background(), UnsealInput{KeyFile: n.keyFile}); err != nil {
		t.Fatalf("unsealing node B: %v", err)
	}
	n.bAlice, err = n.b.Login(context.Background(), "alice", alicePIN)
	if err != nil {
		t.Fatalf("alice on node B: %v", err)
	}
	return n
}

// freshAlice logs alice in on a third module that has nothing cached.
func (n *nodes) freshAlice(t *testing.T) *Session {
	t.Helper()
	s, err := n.reopen(t).Login(context.Background(), "alice", alicePIN)
	if err != nil {
		t.Fatalf("alice on a fresh module: %v", err)
	}
	return s
}

// signed is a signature made by a node with the version it said it used.
type signed struct {
	node    string
	version int
	digest  []byte
	sig     []byte
	pub     crypto.PublicKey
}

func signWith(t *testing.T, node string, s *Session, keyID string, version int, msg string) signed {
	t.Helper()
	sg, err := s.Signer(context.Background(), keyID)
	if err != nil {
		t.Fatalf("%s: signer: %v", node, err)
	}
	d := sha256.Sum256([]byte(msg))
	sig, err := sg.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("%s: signing: %v", node, err)
	}
	return signed{node: node, version: version, digest: d[:], sig: sig, pub: sg.Public()}
}

// verifies checks sig against version sg.version of the key as s has it.
func verifies(t *testing.T, who string, s *Session, keyID string, sg signed) {
	t.Helper()
	if err := s.Verify(context.Background(), keyID, sg.version, sg.digest, sg.sig, crypto.SHA256); err != nil {
		t.Errorf("%s: %s's version %d signature does not verify: %v", who, sg.node, sg.version, err)
	}
}

// storedVersions returns the key's stored version numbers.
func storedVersions(t *testing.T, db Store, keyID string) []int {
	t.Helper()
	rows, err := db.HSMObject(context.Background(), keyID)
	if err != nil {
		t.Fatalf("reading key %s: %v", keyID, err)
	}
	var vs []int
	for _, r := range rows {
		vs = append(vs, r.Version)
	}
	return vs
}

func wantVersions(t *testing.T, db Store, keyID string, n int) {
	t.Helper()
	got := storedVersions(t, db, keyID)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored versions %v, want %v", got, want)
	}
}

// TestTwoNodesRotateWithStaleCache: node B rotates a key node A rotated
// after B cached it. B's rotation must become version 3, not overwrite A's
// version 2, and every version either node handed out keeps working.
func TestTwoNodesRotateWithStaleCache(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k, err := n.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "responder"})
		if err != nil {
			t.Fatal(err)
		}
		aes, err := n.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "data"})
		if err != nil {
			t.Fatal(err)
		}
		// Both nodes have both keys cached at version 1.
		sigB1 := signWith(t, "B", n.bAlice, k.ID, 1, "B v1")
		ctB1, err := n.bAlice.Encrypt(ctx, aes.ID, []byte("B v1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		signerB1, err := n.bAlice.Signer(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}

		// A rotates both: version 2.
		for _, id := range []string{k.ID, aes.ID} {
			if got, err := n.alice.RotateKey(ctx, id); err != nil || got.Version != 2 {
				t.Fatalf("A rotates %s: version %d, %v", id, got.Version, err)
			}
		}
		sigA2 := signWith(t, "A", n.alice, k.ID, 2, "A v2")
		ctA2, err := n.alice.Encrypt(ctx, aes.ID, []byte("A v2"), nil)
		if err != nil {
			t.Fatal(err)
		}

		// B rotates from its stale cache: it must land on version 3.
		for _, id := range []string{k.ID, aes.ID} {
			got, err := n.bAlice.RotateKey(ctx, id)
			if err != nil || got.Version != 3 {
				t.Fatalf("B rotates %s from a stale cache: version %d, %v (want 3)", id, got.Version, err)
			}
			wantVersions(t, n.db, id, 3)
		}
		sigB3 := signWith(t, "B", n.bAlice, k.ID, 3, "B v3")
		ctB3, err := n.bAlice.Encrypt(ctx, aes.ID, []byte("B v3"), nil)
		if err != nil {
			t.Fatal(err)
		}
		// The signer B handed out before the reload still signs with v1.
		d := sha256.Sum256([]byte("old signer"))
		oldSig, err := signerB1.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("B's version 1 signer after the reload: %v", err)
		}
		sigB1again := signed{node: "B (old signer)", version: 1, digest: d[:], sig: oldSig}

		// Each node verifies and decrypts what it handed out.
		for _, sg := range []signed{sigB1, sigA2} {
			verifies(t, "A", n.alice, k.ID, sg)
		}
		for _, sg := range []signed{sigB1, sigA2, sigB3, sigB1again} {
			verifies(t, "B", n.bAlice, k.ID, sg)
		}
		decrypts := func(who string, s *Session, cts map[string][]byte) {
			t.Helper()
			for want, ct := range cts {
				if got, err := s.Decrypt(ctx, aes.ID, ct, nil); err != nil || string(got) != want {
					t.Errorf("%s decrypts %q: %q, %v", who, want, got, err)
				}
			}
		}
		decrypts("A", n.alice, map[string][]byte{"B v1": ctB1, "A v2": ctA2})
		decrypts("B", n.bAlice, map[string][]byte{"B v1": ctB1, "A v2": ctA2, "B v3": ctB3})

		// A module opened fresh sees versions 1..3 with the material each
		// node used: A's version 2 signature verifies against v2 as stored.
		c := n.freshAlice(t)
		if got, err := c.GetKey(ctx, k.ID); err != nil || got.Version != 3 || !got.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(sigB3.pub) {
			t.Fatalf("fresh module: %+v, %v", got, err)
		}
		for _, sg := range []signed{sigB1, sigA2, sigB3, sigB1again} {
			verifies(t, "fresh", c, k.ID, sg)
		}
		decrypts("fresh", c, map[string][]byte{"B v1": ctB1, "A v2": ctA2, "B v3": ctB3})

		// The audit log says what happened: B wrote version 3 after 2.
		wantRotations(t, n.db, k.ID, "version=2 previous=1", "version=3 previous=2")
	})
}

// wantRotations checks the key's key.rotate audit details.
func wantRotations(t *testing.T, db Store, keyID string, want ...string) {
	t.Helper()
	es, err := db.HSMAudit(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.Action == "key.rotate" && e.Object == keyID {
			got = append(got, e.Details)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rotation audit entries %q, want %q", got, want)
	}
}

// TestTwoNodesRotateRetriesAfterConflict: node A rotates after node B read
// the key's head but before B writes. B's insert of version 2 finds it
// taken, B reads the key again and writes version 3; A's version 2 stays.
func TestTwoNodesRotateRetriesAfterConflict(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k, err := n.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "between"})
		if err != nil {
			t.Fatal(err)
		}
		var sigA2 signed
		n.storeB.setBeforeApply(func() {
			if got, err := n.alice.RotateKey(ctx, k.ID); err != nil || got.Version != 2 {
				t.Errorf("A rotates between B's read and write: version %d, %v", got.Version, err)
			}
			sigA2 = signWith(t, "A", n.alice, k.ID, 2, "A v2")
		})
		got, err := n.bAlice.RotateKey(ctx, k.ID)
		if err != nil || got.Version != 3 {
			t.Fatalf("B rotates: version %d, %v (want 3)", got.Version, err)
		}
		wantVersions(t, n.db, k.ID, 3)
		sigB3 := signWith(t, "B", n.bAlice, k.ID, 3, "B v3")
		c := n.freshAlice(t)
		for _, sg := range []signed{sigA2, sigB3} {
			verifies(t, "B", n.bAlice, k.ID, sg)
			verifies(t, "fresh", c, k.ID, sg)
		}
		wantRotations(t, n.db, k.ID, "version=2 previous=1", "version=3 previous=2 retried=changed-elsewhere")

		// Changed again between the retry's read and write: B gives up
		// with a conflict and writes nothing.
		n.storeB.setBeforeApply(func() {
			n.storeB.setBeforeApply(func() {
				if _, err := n.alice.RotateKey(ctx, k.ID); err != nil {
					t.Error(err)
				}
			})
			if _, err := n.alice.RotateKey(ctx, k.ID); err != nil {
				t.Error(err)
			}
		})
		if _, err := n.bAlice.RotateKey(ctx, k.ID); !errors.Is(err, storage.ErrHSMObjectChanged) {
			t.Fatalf("B rotates while A rotates twice: %v, want a conflict", err)
		}
		wantVersions(t, n.db, k.ID, 5)
	})
}

// TestTwoNodesConcurrentRotations rotates one key on both nodes at once,
// round after round, each node from a cache the other's last rotation made
// stale: every rotation succeeds (one node's usually after a retry), no
// version is lost or handed out twice, and each stored version is the
// material its rotation handed out.
func TestTwoNodesConcurrentRotations(t *testing.T) {
	const rounds = 25
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k, err := n.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "race"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.bAlice.GetKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			sigs []signed
		)
		for round := range rounds {
			var wg sync.WaitGroup
			start := make(chan struct{})
			errc := make(chan error, 2)
			for _, node := range []struct {
				name string
				s    *Session
			}{{"A", n.alice}, {"B", n.bAlice}} {
				wg.Go(func() {
					<-start
					info, err := node.s.RotateKey(ctx, k.ID)
					if err != nil {
						errc <- fmt.Errorf("round %d: node %s: %w", round, node.name, err)
						return
					}
					sg, err := node.s.Signer(ctx, k.ID)
					if err != nil {
						errc <- err
						return
					}
					d := sha256.Sum256(fmt.Appendf(nil, "%s %d", node.name, round))
					sig, err := sg.Sign(nil, d[:], crypto.SHA256)
					if err != nil {
						errc <- err
						return
					}
					mu.Lock()
					sigs = append(sigs, signed{node: node.name, version: info.Version, digest: d[:], sig: sig, pub: info.PublicKey})
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
		}
		wantVersions(t, n.db, k.ID, 1+2*rounds)
		seen := map[int]string{}
		c := n.freshAlice(t)
		for _, sg := range sigs {
			if other, dup := seen[sg.version]; dup {
				t.Errorf("version %d handed out to both %s and %s", sg.version, other, sg.node)
			}
			seen[sg.version] = sg.node
			verifies(t, "fresh", c, k.ID, sg)
		}
	})
}

// TestTwoNodesAttributeChangesSurviveStaleCaches: a rotation or attribute
// change made from a stale cache must not undo another node's change, and a
// key destroyed on one node is not brought back by another.
func TestTwoNodesAttributeChangesSurviveStaleCaches(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		k, err := n.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "attrs", Extractable: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.bAlice.GetKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		// B (cached at v1, extractable) turns extractable off after A
		// rotated: every version, v2 included, must be non-extractable.
		if _, err := n.alice.RotateKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if err := n.bAlice.SetNonExtractable(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		// A (cached at v2, extractable) rotates and shares: the new
		// version must stay non-extractable.
		if got, err := n.alice.RotateKey(ctx, k.ID); err != nil || got.Version != 3 || got.Extractable {
			t.Fatalf("A rotates after B's change: %+v, %v", got, err)
		}
		if err := n.bAlice.ShareKey(ctx, k.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		wantVersions(t, n.db, k.ID, 3)
		got, err := n.freshAlice(t).GetKey(ctx, k.ID)
		if err != nil || got.Version != 3 || got.Extractable || fmt.Sprint(got.SharedWith) != "[bob]" {
			t.Fatalf("fresh module: %+v, %v (want version 3, not extractable, shared with bob)", got, err)
		}

		// A destroys the key; B, still holding it, cannot rotate it back
		// into existence, and B's signers stop.
		sg, err := n.bAlice.Signer(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.alice.DestroyKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := n.bAlice.RotateKey(ctx, k.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B rotates a key A destroyed: %v, want ErrNotFound", err)
		}
		if rows, err := n.db.HSMObject(ctx, k.ID); err == nil {
			t.Fatalf("destroyed key came back with %d versions", len(rows))
		}
		d := sha256.Sum256([]byte("after destroy"))
		if _, err := sg.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B's signer after the destroy: %v, want ErrNotFound", err)
		}
	})
}

// TestTwoNodesGenerateOneLabel: both nodes create a key with the same label
// at once; exactly one key is stored, the other node gets ErrExists.
func TestTwoNodesGenerateOneLabel(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		for round := range 6 {
			label := fmt.Sprintf("ocsp-responder-%d", round)
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, 2)
			for i, s := range []*Session{n.alice, n.bAlice} {
				wg.Go(func() {
					<-start
					_, errs[i] = s.GenerateKey(ctx, KeySpec{Type: P256, Label: label})
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrExists):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d nodes created %q (errors %v), want exactly 1", round, ok, label, errs)
			}
			for _, s := range []*Session{n.alice, n.bAlice} {
				if _, err := s.FindKey(ctx, label); err != nil {
					t.Fatalf("round %d: FindKey: %v", round, err)
				}
			}
		}
	})
}

// TestTwoNodesKeySync: what node A does to a key that node B has cached —
// destroy, rotate, turn extractable off — is in force on B after one key
// sync, for B's sessions and for the Signer B handed out earlier (as an
// issuer holds one). Before the sync B still works from its cache.
func TestTwoNodesKeySync(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		gone, err := n.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "gone"})
		if err != nil {
			t.Fatal(err)
		}
		rot, err := n.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "rotated", Extractable: true})
		if err != nil {
			t.Fatal(err)
		}
		held, err := n.bAlice.Signer(ctx, gone.ID) // caches it on B
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.bAlice.Signer(ctx, rot.ID); err != nil {
			t.Fatal(err)
		}
		if c, err := n.b.SyncKeys(ctx); err != nil || c != 0 {
			t.Fatalf("sync with nothing changed = %d, %v", c, err)
		}
		if err := n.alice.DestroyKey(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := n.alice.RotateKey(ctx, rot.ID); err != nil {
			t.Fatal(err)
		}
		if err := n.alice.SetNonExtractable(ctx, rot.ID); err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("msg"))
		if _, err := held.Sign(nil, d[:], crypto.SHA256); err != nil {
			t.Fatalf("before the sync B's signer still works from its cache: %v", err)
		}
		if c, err := n.b.SyncKeys(ctx); err != nil || c != 2 {
			t.Fatalf("sync = %d, %v; want 2 keys", c, err)
		}
		if _, err := held.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B's signer for a key A destroyed: %v, want ErrNotFound", err)
		}
		if _, err := n.bAlice.Signer(ctx, gone.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B's session finds a key A destroyed: %v, want ErrNotFound", err)
		}
		if ko := cachedOn(n.b, rot.ID); ko == nil || ko.current().version != 2 || ko.a.Extractable {
			t.Fatalf("B's cache after the sync: %+v", ko)
		}
		sg, err := n.bAlice.Signer(ctx, rot.ID)
		if err != nil {
			t.Fatal(err)
		}
		aSg, err := n.alice.Signer(ctx, rot.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !sg.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(aSg.Public()) {
			t.Fatal("B signs with another version than A's current one")
		}
		if c, err := n.b.SyncKeys(ctx); err != nil || c != 0 {
			t.Fatalf("second sync = %d, %v", c, err)
		}
	})
}

// TestKeySyncLoop: the module's own loop applies another node's destroy
// within its interval.
func TestKeySyncLoop(t *testing.T) {
	db, _ := storagetest.SQLite(t)
	f := setup(t, db)
	m, err := New(context.Background(), Options{Store: db, KeySyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx := context.Background()
	if err := m.Unseal(ctx, UnsealInput{KeyFile: f.keyFile}); err != nil {
		t.Fatal(err)
	}
	s, err := m.Login(ctx, "alice", alicePIN)
	if err != nil {
		t.Fatal(err)
	}
	k, err := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "k"})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := s.Signer(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.alice.DestroyKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("msg"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := sg.Sign(nil, d[:], crypto.SHA256); errors.Is(err, ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sync loop never dropped a key destroyed by another module")
		}
	}
}
