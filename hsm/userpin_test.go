package hsm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// anotherNode opens the keystore database again and unseals a module over
// it: what another `ca` process or cluster node has, its own connections
// and its own m.mu.
func (n *nodes) anotherNode(t *testing.T) *Module {
	t.Helper()
	db, err := storage.Open(context.Background(), n.dialect, n.dsn)
	if err != nil {
		t.Fatalf("opening the database again: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	m := newModule(t, db)
	if err := m.Unseal(context.Background(), UnsealInput{KeyFile: n.keyFile}); err != nil {
		t.Fatalf("unsealing another node: %v", err)
	}
	return m
}

// userState reads name's lockout and failure count as stored.
func userState(t *testing.T, db *storage.DB, name string) storage.HSMUser {
	t.Helper()
	u, err := db.HSMUser(context.Background(), name)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return u
}

// TestConcurrentWrongPINs: wrong PINs for one user tried at once by
// separate processes (each its own module and connections, as `ca hsm
// users pin` run in parallel, or cluster nodes) count exactly maxFailed
// failures: the audit log says failures=1 to maxFailed once each, in
// order, the last of them the lockout, every other attempt is refused as
// locked, and the lock stays. A security review saw two entries with
// failures=2, and seven wrong PINs checked against a limit of five with a
// lockout undone, when each process wrote back the row it had read.
func TestConcurrentWrongPINs(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		const tries = 12
		mods := make([]*Module, tries)
		for i := range mods {
			mods[i] = n.anotherNode(t)
		}
		for round := 1; round <= 3; round++ {
			head, _, err := n.db.HSMAuditHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			errs := make([]error, tries)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, m := range mods {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errs[i] = m.Login(ctx, "alice", fmt.Sprintf("wrong-pin-%02d", i))
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if !errors.Is(err, ErrBadPIN) {
					t.Fatalf("round %d, process %d: %v, want ErrBadPIN", round, i, err)
				}
			}
			es, err := n.db.HSMAudit(ctx, head+1, 0)
			if err != nil {
				t.Fatal(err)
			}
			var counted []string
			locked := 0
			for _, e := range es {
				switch {
				case e.Object != "alice":
					t.Fatalf("round %d: unexpected entry %+v", round, e)
				case strings.HasPrefix(e.Details, "reason=bad-pin"):
					counted = append(counted, e.Action+" "+e.Details)
				case e.Action == "login.fail" && e.Details == "reason=locked":
					locked++
				default:
					t.Fatalf("round %d: unexpected entry %+v", round, e)
				}
			}
			var want []string
			for k := 1; k <= maxFailed; k++ {
				action := "login.fail"
				if k == maxFailed {
					action = "user.lockout"
				}
				want = append(want, fmt.Sprintf("%s reason=bad-pin during=login failures=%d", action, k))
			}
			if strings.Join(counted, "\n") != strings.Join(want, "\n") || locked != tries-maxFailed {
				t.Fatalf("round %d: %d wrong PINs at once; counted:\n%s\nthen %d refused as locked; want:\n%s\nthen %d",
					round, tries, strings.Join(counted, "\n"), locked, strings.Join(want, "\n"), tries-maxFailed)
			}
			if u := userState(t, n.db, "alice"); !u.Locked || u.Failures != maxFailed {
				t.Fatalf("round %d: alice stored with locked=%v failures=%d, want locked with %d", round, u.Locked, u.Failures, maxFailed)
			}
			if err := n.officer.UnlockUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// fourWrongPINs leaves alice one wrong PIN from the lockout.
func fourWrongPINs(t *testing.T, m *Module) {
	t.Helper()
	for i := 1; i < maxFailed; i++ {
		if _, err := m.Login(context.Background(), "alice", "wrong-pin"); !errors.Is(err, ErrBadPIN) {
			t.Fatalf("wrong PIN %d: %v", i, err)
		}
	}
}

// lockAlice is the fifth wrong PIN, tried on node A.
func lockAlice(t *testing.T, n *nodes) func() {
	return func() {
		if _, err := n.m.Login(context.Background(), "alice", "wrong-pin"); !errors.Is(err, ErrBadPIN) {
			t.Errorf("fifth wrong PIN: %v", err)
		}
	}
}

// TestPINRacesAcrossNodes: what one node writes about a user after
// reading it must not undo what another node wrote in between (each
// node's m.mu covers only itself). Each case puts node A's change between
// node B's read and its write.
func TestPINRacesAcrossNodes(t *testing.T) {
	const newPIN = "alice-pin-2"
	t.Run("login racing a lockout", func(t *testing.T) {
		eachTwoNodes(t, func(t *testing.T, n *nodes) {
			ctx := context.Background()
			fourWrongPINs(t, n.m)
			n.storeB.setBeforeApply(lockAlice(t, n))
			if _, err := n.b.Login(ctx, "alice", alicePIN); !errors.Is(err, ErrBadPIN) {
				t.Errorf("right PIN checked before a lockout, recorded after it: %v, want ErrBadPIN", err)
			}
			if u := userState(t, n.db, "alice"); !u.Locked || u.Failures != maxFailed {
				t.Fatalf("alice locked=%v failures=%d: the login undid the lockout", u.Locked, u.Failures)
			}
		})
	})
	t.Run("PIN change racing a lockout", func(t *testing.T) {
		eachTwoNodes(t, func(t *testing.T, n *nodes) {
			fourWrongPINs(t, n.m)
			n.storeB.setBeforeApply(lockAlice(t, n))
			if err := n.bAlice.ChangePIN(context.Background(), alicePIN, newPIN); err != nil {
				t.Fatal(err)
			}
			u := userState(t, n.db, "alice")
			if !u.Locked || u.Failures != maxFailed {
				t.Fatalf("alice locked=%v failures=%d: the PIN change undid the lockout", u.Locked, u.Failures)
			}
			if !checkPIN(u.PINHash, newPIN) {
				t.Fatal("the new PIN was not stored")
			}
		})
	})
	t.Run("wrong PIN racing a PIN change", func(t *testing.T) {
		eachTwoNodes(t, func(t *testing.T, n *nodes) {
			n.storeB.setBeforeApply(func() {
				if err := n.alice.ChangePIN(context.Background(), alicePIN, newPIN); err != nil {
					t.Errorf("changing the PIN on node A: %v", err)
				}
			})
			if _, err := n.b.Login(context.Background(), "alice", "wrong-pin"); !errors.Is(err, ErrBadPIN) {
				t.Fatalf("wrong PIN: %v", err)
			}
			if u := userState(t, n.db, "alice"); !checkPIN(u.PINHash, newPIN) || u.Failures != 1 {
				t.Fatalf("after a failure read before a PIN change: failures=%d, new PIN stored %v (the old hash written back)",
					u.Failures, checkPIN(u.PINHash, newPIN))
			}
		})
	})
	t.Run("unlock racing a PIN change", func(t *testing.T) {
		eachTwoNodes(t, func(t *testing.T, n *nodes) {
			ctx := context.Background()
			officerB, err := n.b.Login(ctx, "co", officerPIN)
			if err != nil {
				t.Fatal(err)
			}
			fourWrongPINs(t, n.m)
			lockAlice(t, n)()
			n.storeB.setBeforeApply(func() {
				if err := n.alice.ChangePIN(ctx, alicePIN, newPIN); err != nil {
					t.Errorf("changing the PIN on node A: %v", err)
				}
			})
			if err := officerB.UnlockUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			if u := userState(t, n.db, "alice"); u.Locked || u.Failures != 0 || !checkPIN(u.PINHash, newPIN) {
				t.Fatalf("after an unlock read before a PIN change: locked=%v failures=%d, new PIN stored %v",
					u.Locked, u.Failures, checkPIN(u.PINHash, newPIN))
			}
		})
	})
	t.Run("login racing a PIN change", func(t *testing.T) {
		eachTwoNodes(t, func(t *testing.T, n *nodes) {
			ctx := context.Background()
			n.storeB.setBeforeApply(func() {
				if err := n.alice.ChangePIN(ctx, alicePIN, newPIN); err != nil {
					t.Errorf("changing the PIN on node A: %v", err)
				}
			})
			if _, err := n.b.Login(ctx, "alice", alicePIN); !errors.Is(err, ErrBadPIN) {
				t.Fatalf("the old PIN, checked before node A replaced it: %v, want ErrBadPIN", err)
			}
			es, err := n.db.HSMAudit(ctx, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if last := es[len(es)-1]; last.Action != "login.fail" || last.Details != "reason=pin-changed" {
				t.Fatalf("last audit entry %s %q, want login.fail reason=pin-changed", last.Action, last.Details)
			}
			if u := userState(t, n.db, "alice"); u.Failures != 0 {
				t.Fatalf("a PIN that was right when checked counted as a failure (%d)", u.Failures)
			}
		})
	})
	t.Run("PIN change racing a PIN change", func(t *testing.T) {
		eachTwoNodes(t, func(t *testing.T, n *nodes) {
			n.storeB.setBeforeApply(func() {
				if err := n.alice.ChangePIN(context.Background(), alicePIN, newPIN); err != nil {
					t.Errorf("changing the PIN on node A: %v", err)
				}
			})
			if err := n.bAlice.ChangePIN(context.Background(), alicePIN, "alice-pin-3"); !errors.Is(err, ErrBadPIN) {
				t.Fatalf("a change checked against the PIN node A replaced meanwhile: %v, want ErrBadPIN", err)
			}
			if u := userState(t, n.db, "alice"); !checkPIN(u.PINHash, newPIN) {
				t.Fatal("node A's new PIN was overwritten by a change checked against the PIN it replaced")
			}
		})
	})
}

// TestCreateUserOnTwoNodes: two nodes creating the same user at once (each
// checked the name was free before the other wrote): one succeeds, the
// other gets ErrExists, and the stored user has the first one's PIN and
// role, not the second's.
func TestCreateUserOnTwoNodes(t *testing.T) {
	eachTwoNodes(t, func(t *testing.T, n *nodes) {
		ctx := context.Background()
		officerB, err := n.b.Login(ctx, "co", officerPIN)
		if err != nil {
			t.Fatal(err)
		}
		n.storeB.setBeforeApply(func() {
			if err := n.officer.CreateUser(ctx, "grace", RoleUser, "grace-pin-A"); err != nil {
				t.Errorf("creating grace on node A: %v", err)
			}
		})
		if err := officerB.CreateUser(ctx, "grace", RoleAuditor, "grace-pin-B"); !errors.Is(err, ErrExists) {
			t.Fatalf("creating grace on node B after node A did: %v, want ErrExists", err)
		}
		u := userState(t, n.db, "grace")
		if u.Role != string(RoleUser) || !checkPIN(u.PINHash, "grace-pin-A") {
			t.Fatalf("grace is %s with node B's PIN %v: node B replaced node A's user", u.Role, checkPIN(u.PINHash, "grace-pin-B"))
		}
	})
}

// TestNegativeFailuresBuyNothing: the failed-login count is not under the
// row's MAC, so a database writer can set it; a negative count (a
// verification set -1000, for a thousand guesses per write) counts as
// zero: the lockout comes after maxFailed wrong PINs all the same.
func TestNegativeFailuresBuyNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := setup(t, db)
		mustExec(t, db, `UPDATE hsm_users SET failures = -1000 WHERE name = 'alice'`)
		for i := 1; i <= maxFailed; i++ {
			if _, err := f.m.Login(ctx, "alice", "wrong-pin-1"); !errors.Is(err, ErrBadPIN) {
				t.Fatalf("wrong PIN %d: %v", i, err)
			}
			if u := userState(t, db, "alice"); u.Failures != i || u.Locked != (i == maxFailed) {
				t.Fatalf("after wrong PIN %d: failures=%d locked=%v", i, u.Failures, u.Locked)
			}
		}
		if _, err := f.m.Login(ctx, "alice", alicePIN); err == nil {
			t.Fatal("the right PIN logged in a locked user")
		}
	})
}
