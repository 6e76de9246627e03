package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// TestRestoreOlderDatabase follows the README's backup section: a SQLite
// backup taken while ca serve runs, a revocation after it, then the backup
// put back and the node started again. The intermediate's CRLs go on from
// numbers above those already published (a review saw CRL 5 after 7), and
// the node warns once that the database is older than what it served, so
// the forgotten revocation can be made again; the next start does not warn.
func TestRestoreOlderDatabase(t *testing.T) {
	sqlite3 := requireTool(t, "sqlite3")
	c := StartCA(t, Options{})
	ctx := context.Background()
	chain := issueChain(t, c, goCSR(t, "restored.localhost"))
	leaf, inter := chain[0], chain[1]
	const warning = "the database is older than CRLs this node already served"

	numbers := func() (full, delta int64) {
		t.Helper()
		return fetchCRL(t, c, "intermediate.crl", inter).Number.Int64(), fetchCRL(t, c, "intermediate-delta.crl", inter).Number.Int64()
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; output:\n%s", what, c.Output())
			}
		}
	}

	backup := filepath.Join(t.TempDir(), "strongroom.db")
	db := filepath.Join(c.Dir, "strongroom.db")
	if out, err := exec.Command(sqlite3, db, ".backup "+backup).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 .backup: %v\n%s", err, out)
	}
	backedUp, _ := numbers()

	c.MustCLI(t, ctx, "cert", "revoke", string(core.SerialFromBig(leaf.SerialNumber)), "--reason", "keyCompromise")
	waitFor("the revocation in the CRLs", func() bool {
		return crlEntry(fetchCRL(t, c, "intermediate-delta.crl", inter), leaf) != nil
	})
	full, delta := numbers()
	published := max(full, delta)
	if published <= backedUp {
		t.Fatalf("CRLs after the revocation numbered %d, %d; %d before it", full, delta, backedUp)
	}
	if strings.Contains(c.Output(), warning) {
		t.Fatalf("warned before any restore:\n%s", c.Output())
	}

	c.Stop()
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, db, b)
	c.start()
	c.WaitReady()
	waitFor("the CRLs built after the restart", func() bool {
		f, d := numbers()
		return f != backedUp && d > f
	})
	full, delta = numbers()
	if full <= published || delta <= full {
		t.Fatalf("after the restore: full CRL %d, delta %d; %d was published before", full, delta, published)
	}
	// The node's log reaches its output in batches (every 100 ms): wait
	// for the warning rather than read the output once (CI saw it read
	// before the batch with the warning was written).
	waitFor("the warning about the older database", func() bool { return strings.Contains(c.Output(), warning) })
	if out := c.Output(); strings.Count(out, warning) != 1 || !strings.Contains(out, "issuer=intermediate") {
		t.Fatalf("want one warning about the older database; output:\n%s", out)
	}

	c.Stop()
	c.start()
	c.WaitReady()
	if strings.Contains(c.Output(), warning) {
		t.Fatalf("warned again on the next start:\n%s", c.Output())
	}
}
