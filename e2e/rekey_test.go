package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreWithNewUnsealMaterial is the disaster path of a review
// finding: the node's unseal.key is lost, and only a --passphrase backup
// and its passphrase remain. ca hsm restore --unseal passphrase gives the
// restored module a new passphrase; ca serve unseals with it, issues, and
// the audit log verifies.
func TestRestoreWithNewUnsealMaterial(t *testing.T) {
	ctx := context.Background()
	c := StartCA(t, Options{})
	file := filepath.Join(t.TempDir(), "b.srbk")
	backup := exec.Command(caBinary, "hsm", "backup", "--passphrase", "--out", file, "--data", c.Dir)
	backup.Env = append(os.Environ(), "STRONGROOM_BACKUP_PASSPHRASE=the backup passphrase")
	if out, err := backup.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	c.Stop()
	if err := os.Remove(filepath.Join(c.Dir, "unseal.key")); err != nil {
		t.Fatal(err)
	}

	fresh := filepath.Join(t.TempDir(), "restored")
	env := []string{"STRONGROOM_BACKUP_PASSPHRASE=the backup passphrase", "STRONGROOM_NEW_HSM_PASSPHRASE=a new HSM passphrase"}
	restore := exec.Command(caBinary, "hsm", "restore", "--in", file, "--from-dir", c.Dir, "--unseal", "passphrase", "--data", fresh)
	restore.Env = append(os.Environ(), env...)
	out, err := restore.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "HSM unsealed with the new material") {
		t.Fatalf("restore --unseal passphrase: %v\n%s", err, out)
	}
	// What the restore lists to copy by hand: the CA user's PIN and the
	// key service's (the certificate database starts empty here).
	for _, f := range []string{"ca.pin", "apps.pin"} {
		b, err := os.ReadFile(filepath.Join(c.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(fresh, f), b, 0o600)
	}

	// Same ports, root and client (the CA certificates came with
	// --from-dir); another directory.
	r := &CA{t: t, Dir: fresh, HTTPSURL: c.HTTPSURL, HTTPURL: c.HTTPURL, Client: c.Client,
		Root: filepath.Join(fresh, "root.pem"), Intermediate: filepath.Join(fresh, "intermediate.pem"),
		AdminKeyFile: filepath.Join(fresh, "admin.key"), env: []string{"STRONGROOM_HSM_PASSPHRASE=a new HSM passphrase"}}
	r.start()
	t.Cleanup(r.Stop)
	r.WaitReady()
	key := r.NewAPIKey(t, "--name", "after-restore", "--scopes", "issue,read")
	if err := os.WriteFile(r.AdminKeyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chain := issueChain(t, r, goCSR(t, "after-restore.example.com"))
	if chain[0].Subject.CommonName != "after-restore.example.com" {
		t.Fatalf("issued %s", chain[0].Subject)
	}
	out2 := r.MustCLI(t, ctx, "hsm", "audit", "verify")
	if !strings.Contains(out2, "head MAC verified") || strings.Contains(out2, "not authenticated:") {
		t.Fatalf("audit verify:\n%s", out2)
	}
}
