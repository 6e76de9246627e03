package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func runCA(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestBackupRestoreCLI: ca init, ca hsm backup, then ca hsm restore into a
// fresh directory (refused until the key file is there, refused for a
// tampered file, refused a second time), and the restored CA's keys list.
func TestBackupRestoreCLI(t *testing.T) {
	base := t.TempDir()
	old, fresh, file := filepath.Join(base, "old"), filepath.Join(base, "new"), filepath.Join(base, "b.srbk")
	if out, err := runCA(t, "--data", old, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", old, "hsm", "backup", "--out", file); err != nil || !strings.Contains(out, "backup written") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if _, err := runCA(t, "--data", old, "hsm", "backup", "--out", file); err == nil {
		t.Fatal("backup overwrote an existing file")
	}
	_, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", old)
	if err == nil || !strings.Contains(err.Error(), "unseal.key") {
		t.Fatalf("restore without the key file: %v", err)
	}
	key, _ := os.ReadFile(filepath.Join(old, "unseal.key"))
	os.MkdirAll(fresh, 0o700) // the failed restore removed the directory it had created
	os.WriteFile(filepath.Join(fresh, "unseal.key"), key, 0o600)
	data, _ := os.ReadFile(file)
	bad := bytes.Clone(data)
	bad[len(bad)-40] ^= 1
	os.WriteFile(file+".bad", bad, 0o600)
	if _, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file+".bad"); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("tampered restore: %v", err)
	}
	out, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", old) // failed runs kept nothing
	if err != nil || !strings.Contains(out, "audit log intact") || !strings.Contains(out, "unsealed with the original material") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	// What is left to copy names every PIN file the node reads (a review
	// saw apps.pin left out: the key service then stayed off).
	for _, f := range []string{"ca.pin", "apps.pin", "officer.pin", "certificate database"} {
		if !strings.Contains(out, f) {
			t.Errorf("restore's list of what to copy does not name %s:\n%s", f, out)
		}
	}
	// It unsealed with the key file in place, and --from-dir copied the
	// CA certificates: the list asks for neither.
	if strings.Contains(out, "key file") || strings.Contains(out, "CA certificates") {
		t.Errorf("restore asks for the key file it unsealed with, or certificates it copied:\n%s", out)
	}
	// Without --from-dir the CA certificates are still to copy (an upgrade
	// review's next ca serve failed on the missing root.pem).
	bare := filepath.Join(base, "bare")
	os.MkdirAll(bare, 0o700)
	os.WriteFile(filepath.Join(bare, "unseal.key"), key, 0o600)
	if out, err := runCA(t, "--data", bare, "hsm", "restore", "--in", file); err != nil || !strings.Contains(out, "the CA certificates (root.pem, intermediate.pem)") {
		t.Errorf("restore without --from-dir: %v, want the CA certificates in the list:\n%s", err, out)
	}
	for _, f := range []string{"strongroom.yaml", "root.pem", "intermediate.pem"} {
		if _, err := os.Stat(filepath.Join(fresh, f)); err != nil {
			t.Fatalf("--from-dir did not copy %s", f)
		}
	}
	if _, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file); err == nil {
		t.Fatal("second restore into the same directory accepted")
	}
	pin, _ := os.ReadFile(filepath.Join(old, "ca.pin"))
	os.WriteFile(filepath.Join(fresh, "ca.pin"), pin, 0o600)
	oldKeys, err1 := runCA(t, "--data", old, "hsm", "keys", "list")
	newKeys, err2 := runCA(t, "--data", fresh, "hsm", "keys", "list")
	if err1 != nil || err2 != nil || !strings.Contains(newKeys, "intermediate") {
		t.Fatalf("keys list: %v %v\n%s", err1, err2, newKeys)
	}
	for _, line := range strings.Split(strings.TrimSpace(oldKeys), "\n")[1:] {
		if id := strings.Fields(line)[0]; !strings.Contains(newKeys, id) {
			t.Fatalf("key %s of the old CA is missing after restore:\n%s", id, newKeys)
		}
	}
}

// TestBackupWarnsUnverified: a backup taken while a user record does not
// verify (altered outside the HSM) says so when written and when restored,
// and the restored record is still refused; a backup of verifying records
// says nothing.
func TestBackupWarnsUnverified(t *testing.T) {
	old := initAltered(t, `UPDATE hsm_users SET role = 'officer' WHERE name = 'apps'`)
	base := t.TempDir()
	fresh, file := filepath.Join(base, "new"), filepath.Join(base, "b.srbk")
	const warning = "warning: the records of apps were altered outside the HSM"
	out, err := runCA(t, "--data", old, "hsm", "backup", "--out", file)
	if err != nil || !strings.Contains(out, "backup written") || !strings.Contains(out, warning) {
		t.Fatalf("backup of an altered record: %v\n%s", err, out)
	}
	os.MkdirAll(fresh, 0o700)
	key, _ := os.ReadFile(filepath.Join(old, "unseal.key"))
	os.WriteFile(filepath.Join(fresh, "unseal.key"), key, 0o600)
	if out, err = runCA(t, "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", old); err != nil || !strings.Contains(out, warning) {
		t.Fatalf("restore of an altered record: %v\n%s", err, out)
	}
	pin, _ := os.ReadFile(filepath.Join(old, "officer.pin"))
	t.Setenv(config.EnvOfficerPIN, strings.TrimSpace(string(pin)))
	if out, err := runCA(t, "--data", fresh, "hsm", "users", "list"); err == nil || !regexp.MustCompile(`(?m)^apps\s.*TAMPERED`).MatchString(out) {
		t.Fatalf("the restored record verifies: %v\n%s", err, out)
	}

	clean := filepath.Join(t.TempDir(), "d")
	if out, err := runCA(t, "--data", clean, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", clean, "hsm", "backup", "--out", file+".clean"); err != nil || strings.Contains(out, "warning") {
		t.Fatalf("backup of verifying records: %v\n%s", err, out)
	}
}

// TestAlteredNamesShownEscaped: a user name written into the database
// with escape sequences and a newline (a review cleared the screen and
// forged a line of `ca hsm backup`'s output) is printed quoted, by `ca hsm
// users list` and by the backup's warning.
func TestAlteredNamesShownEscaped(t *testing.T) {
	const name = "\x1b[2J\x1b]0;pwned\x07x\nbackup verified OK: no user altered"
	dir := initAltered(t, `INSERT INTO hsm_users (name, role, pin_hash, created) VALUES (?, 'officer', 'x', 0)`, name)
	pin, _ := os.ReadFile(filepath.Join(dir, "officer.pin"))
	t.Setenv(config.EnvOfficerPIN, strings.TrimSpace(string(pin)))
	list, _ := runCA(t, "--data", dir, "hsm", "users", "list")
	backup, err := runCA(t, "--data", dir, "hsm", "backup", "--out", filepath.Join(t.TempDir(), "b.srbk"))
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, backup)
	}
	for what, out := range map[string]string{"users list": list, "backup": backup} {
		if strings.ContainsAny(out, "\x1b\x07") || strings.Contains(out, "\nbackup verified OK") || !strings.Contains(out, `"\x1b[2J`) {
			t.Errorf("%s prints the name raw:\n%q", what, out)
		}
	}
	if got := shown("officer"); got != "officer" {
		t.Errorf("a plain name shown as %q", got)
	}
}

// TestStatusShowsAlteredAudit: `ca hsm status` checks the audit log's
// chain too: a key's history is read from it, and an entry about a key
// deleted or edited outside the HSM shows only there.
func TestStatusShowsAlteredAudit(t *testing.T) {
	dir := initAltered(t, `DELETE FROM hsm_audit WHERE seq = 3`)
	out, err := runCA(t, "--data", dir, "hsm", "status")
	if err == nil || !strings.Contains(err.Error(), "audit log was altered outside the HSM at entry #3") || !strings.Contains(out, "audit log: ALTERED at entry #3") {
		t.Fatalf("status with an audit entry deleted: %v\n%s", err, out)
	}
	clean := filepath.Join(t.TempDir(), "d")
	if out, err := runCA(t, "--data", clean, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", clean, "hsm", "status"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("status of an intact keystore: %v\n%s", err, out)
	}
}

// TestRestoreIntoUsedPostgresNamesTheDatabase: on PostgreSQL the keystore
// lives in the shared database, not the data directory: a restore into a
// node whose database already holds one says so (an upgrade review was
// told its empty directory was initialised).
func TestRestoreIntoUsedPostgresNamesTheDatabase(t *testing.T) {
	t.Setenv(config.EnvDatabaseDSN, storagetest.PostgresSchema(t))
	base := t.TempDir()
	old, fresh, file := filepath.Join(base, "old"), filepath.Join(base, "new"), filepath.Join(base, "b.srbk")
	if out, err := runCA(t, "--data", old, "init", "--database", "postgres"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", old, "hsm", "backup", "--out", file); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	_, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", old)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL database") || strings.Contains(err.Error(), "fresh data directory") {
		t.Fatalf("restore into a used database: %v", err)
	}
}

// TestBackupFileNeverTorn: `ca hsm backup --out F` created F first and
// wrote it after the backup was made, so a review's killed command left an
// empty F (which a job checking that the file exists counts as a backup).
// It is written as scheduled backups are, into a temporary file renamed
// into place: a file already there is kept as it was, and a backup that
// fails leaves nothing under its name, or beside it.
func TestBackupFileNeverTorn(t *testing.T) {
	dir := initAltered(t, `DELETE FROM hsm_audit WHERE seq = 3`)
	out := t.TempDir()
	taken := filepath.Join(out, "taken.srbk")
	if err := os.WriteFile(taken, []byte("an earlier backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCA(t, "--data", dir, "hsm", "backup", "--out", taken); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("backup over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "an earlier backup" {
		t.Fatalf("the existing file now holds %q", b)
	}
	// A dangling symlink under the name is not replaced, nor is a missing
	// directory made (a review saw both).
	link := filepath.Join(out, "link.srbk")
	if err := os.Symlink(filepath.Join(out, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	clean := t.TempDir()
	if out, err := runCA(t, "--data", clean, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, p := range []string{link, filepath.Join(out, "no-such-dir", "b.srbk")} {
		if _, err := runCA(t, "--data", clean, "hsm", "backup", "--out", p); err == nil {
			t.Fatalf("backup to %s written", p)
		}
	}
	if _, err := runCA(t, "--data", clean, "hsm", "backup", "--out", filepath.Join(out, "clean.srbk")); err != nil {
		t.Fatalf("a backup of the clean CA: %v", err)
	}
	os.Remove(filepath.Join(out, "clean.srbk"))
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	os.Remove(link)
	// The audit log was altered: the backup is refused.
	if _, err := runCA(t, "--data", dir, "hsm", "backup", "--out", filepath.Join(out, "new.srbk")); err == nil {
		t.Fatal("a backup of an altered audit log was written")
	}
	if es, _ := os.ReadDir(out); len(es) != 1 {
		t.Fatalf("after a refused backup the directory holds %d files, want only the earlier one", len(es))
	}
}
