package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
)

// runCAIn is runCA with stdin.
func runCAIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

var shareLine = regexp.MustCompile(`(?m)^\s+(srs1-\S+)$`)

func loadUnseal(t *testing.T, dir string) config.HSM {
	t.Helper()
	c, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.HSM
}

// TestRekeyCLI: ca hsm rekey from a key file to a passphrase, to Shamir
// shares, and back to a key file; each time the old material is refused
// afterwards, strongroom.yaml follows, and the audit log verifies.
func TestRekeyCLI(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	oldKey, _ := os.ReadFile(filepath.Join(dir, "unseal.key"))

	if _, err := runCA(t, "--data", dir, "hsm", "rekey", "--unseal", "vault"); err == nil {
		t.Fatal("rekey to an unknown method succeeded")
	}
	t.Setenv(envNewPassphrase, "the new HSM passphrase")
	t.Setenv(config.EnvOfficerPIN, "not-the-officer-pin")
	if _, err := runCA(t, "--data", dir, "hsm", "rekey", "--unseal", "passphrase"); err == nil {
		t.Fatal("rekey with a wrong officer PIN succeeded")
	}
	t.Setenv(config.EnvOfficerPIN, "") // officer.pin, written by init
	out, err := runCA(t, "--data", dir, "hsm", "rekey", "--unseal", "passphrase")
	if err != nil || !strings.Contains(out, "changed from keyfile to passphrase") || !strings.Contains(out, "checked: the new material unseals the HSM") {
		t.Fatalf("rekey to a passphrase: %v\n%s", err, out)
	}
	if h := loadUnseal(t, dir); h.Unseal != "passphrase" {
		t.Fatalf("strongroom.yaml says hsm.unseal %q", h.Unseal)
	}
	// The old key file no longer unseals, even named in the configuration.
	if err := setUnseal(dir, "keyfile", "unseal.key", config.PKCS11{}); err != nil {
		t.Fatal(err)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "unseal"); err == nil {
		t.Fatalf("the old key file still unseals:\n%s", out)
	}
	if err := setUnseal(dir, "passphrase", "", config.PKCS11{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvPassphrase, "the new HSM passphrase")
	if out, err := runCA(t, "--data", dir, "hsm", "unseal"); err != nil {
		t.Fatalf("unseal with the new passphrase: %v\n%s", err, out)
	}

	out, err = runCA(t, "--data", dir, "hsm", "rekey", "--unseal", "shamir", "--threshold", "2", "--shares", "3")
	shares := shareLine.FindAllStringSubmatch(out, -1)
	if err != nil || len(shares) != 3 {
		t.Fatalf("rekey to shares: %v\n%s", err, out)
	}
	t.Setenv(config.EnvPassphrase, "")
	stdin := shares[2][1] + "\n" + shares[0][1] + "\n\n"
	if out, err := runCAIn(t, stdin, "--data", dir, "hsm", "unseal"); err != nil {
		t.Fatalf("unseal with two of the new shares: %v\n%s", err, out)
	}
	t.Setenv(config.EnvPassphrase, "the new HSM passphrase")
	if h := loadUnseal(t, dir); h.Unseal != "shamir" {
		t.Fatalf("strongroom.yaml says hsm.unseal %q", h.Unseal)
	}

	// Back to a key file: the shares authorise it, and the new key
	// replaces the file in hsm.key_file.
	out, err = runCAIn(t, stdin, "--data", dir, "hsm", "rekey", "--unseal", "keyfile")
	if err != nil || !strings.Contains(out, "new unseal key: "+filepath.Join(dir, "unseal.key")) {
		t.Fatalf("rekey to a key file: %v\n%s", err, out)
	}
	newKey, _ := os.ReadFile(filepath.Join(dir, "unseal.key"))
	if len(newKey) != 32 || bytes.Equal(newKey, oldKey) {
		t.Fatal("the key file was not replaced by a new key")
	}
	if _, err := os.Stat(filepath.Join(dir, "unseal.key.new")); !os.IsNotExist(err) {
		t.Fatalf("unseal.key.new is left: %v", err)
	}
	if h := loadUnseal(t, dir); h.Unseal != "keyfile" || h.KeyFile != "unseal.key" {
		t.Fatalf("strongroom.yaml says %+v", h)
	}
	// Only the refused unseal with the old key file, written while sealed,
	// has no MAC.
	if out, err := runCAIn(t, stdin, "--data", dir, "hsm", "audit", "verify"); err != nil || !strings.Contains(out, "head MAC verified") ||
		!strings.Contains(out, "not authenticated: 1 entry has no MAC") || !strings.Contains(out, " unseal.fail (appended while sealed") {
		t.Fatalf("audit verify after rekeys: %v\n%s", err, out)
	}
	// Status tells it from entries of an older node or an outsider (a
	// review saw it blamed on nodes of the previous release).
	if out, err := runCAIn(t, stdin, "--data", dir, "hsm", "status"); err != nil || !strings.Contains(out, "1 failed unseals or self-tests recorded while sealed") ||
		strings.Contains(out, "previous release") {
		t.Fatalf("status after rekeys: %v\n%s", err, out)
	}
}

// TestRestoreRekeyedCLI is the disaster path: the key file is gone, and a
// --passphrase backup is restored with a new passphrase, which then
// unseals it.
func TestRestoreRekeyedCLI(t *testing.T) {
	base := t.TempDir()
	old, fresh, file := filepath.Join(base, "old"), filepath.Join(base, "new"), filepath.Join(base, "b.srbk")
	if out, err := runCA(t, "--data", old, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	t.Setenv(envBackupPassphrase, "the backup passphrase")
	if out, err := runCA(t, "--data", old, "hsm", "backup", "--passphrase", "--out", file); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(old, "unseal.key"))
	// Without new material the restored module cannot be unsealed: the
	// finding this fixes.
	out, err := runCA(t, "--data", filepath.Join(base, "plain"), "hsm", "restore", "--in", file, "--from-dir", old)
	if err != nil || !strings.Contains(out, "restored, but not unsealed here") || !strings.Contains(out, "--unseal METHOD") {
		t.Fatalf("restore without new material: %v\n%s", err, out)
	}
	t.Setenv(envNewPassphrase, "the new HSM passphrase")
	out, err = runCA(t, "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", old, "--unseal", "passphrase")
	if err != nil || !strings.Contains(out, "with new unseal material: passphrase (was keyfile)") ||
		!strings.Contains(out, "HSM unsealed with the new material") || !strings.Contains(out, "audit log intact") {
		t.Fatalf("restore --unseal passphrase: %v\n%s", err, out)
	}
	if h := loadUnseal(t, fresh); h.Unseal != "passphrase" {
		t.Fatalf("strongroom.yaml says hsm.unseal %q", h.Unseal)
	}
	t.Setenv(config.EnvPassphrase, "the new HSM passphrase")
	out, err = runCA(t, "--data", fresh, "hsm", "audit", "verify")
	if err != nil || !strings.Contains(out, "head MAC verified") || strings.Contains(out, "not authenticated:") {
		t.Fatalf("audit verify of the restored module: %v\n%s", err, out)
	}
	// A module-wrapped backup takes no new material at restore.
	mod := filepath.Join(base, "m.srbk")
	if out, err := runCA(t, "--data", fresh, "hsm", "backup", "--out", mod); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if _, err := runCA(t, "--data", filepath.Join(base, "third"), "hsm", "restore", "--in", mod, "--unseal", "keyfile"); err == nil || !strings.Contains(err.Error(), "ca hsm rekey") {
		t.Fatalf("restore --unseal of a module-wrapped backup: %v", err)
	}
}

// TestRekeySharesShownFirst: a rekey to Shamir whose configuration edit
// failed returned before printing the new shares, which the keystore then
// needed (found by a review: nothing unsealed it any more). The shares
// come out as soon as the keystore has taken them.
func TestRekeySharesShownFirst(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	// The configuration cannot be written: its temporary file is taken.
	if err := os.Mkdir(filepath.Join(dir, config.FileName+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := runCA(t, "--data", dir, "hsm", "rekey", "--unseal", "shamir", "--threshold", "2", "--shares", "3")
	shares := shareLine.FindAllStringSubmatch(out, -1)
	if err == nil || !strings.Contains(err.Error(), "set hsm.unseal: shamir by hand") || len(shares) != 3 {
		t.Fatalf("rekey with a configuration that cannot be written: %v, %d shares shown\n%s", err, len(shares), out)
	}
	os.Remove(filepath.Join(dir, config.FileName+".tmp"))
	if err := setUnseal(dir, "shamir", "", config.PKCS11{}); err != nil {
		t.Fatal(err)
	}
	if out, err := runCAIn(t, shares[0][1]+"\n"+shares[1][1]+"\n\n", "--data", dir, "hsm", "unseal"); err != nil {
		t.Fatalf("unseal with the shares shown: %v\n%s", err, out)
	}
}

// failingOutput refuses every write, as stdout on a full disk does.
type failingOutput struct{}

func (failingOutput) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestSharesUnshownChangeNothing: new Shamir shares that cannot be written
// out stop the rekey, the restore and the init before the keystore takes
// them (found by a review: a rekey to stdout on a full disk exited 0 with a
// keystore only lost shares unsealed). The old material still unseals.
func TestSharesUnshownChangeNothing(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	run := func(args ...string) error {
		cmd := rootCommand()
		cmd.SetOut(failingOutput{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetIn(strings.NewReader(""))
		cmd.SetArgs(args)
		return cmd.ExecuteContext(context.Background())
	}
	err := run("--data", dir, "hsm", "rekey", "--unseal", "shamir", "--threshold", "2", "--shares", "3")
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("rekey with shares that cannot be shown: %v", err)
	}
	if u := loadUnseal(t, dir); u.Unseal != "keyfile" {
		t.Fatalf("hsm.unseal is %q", u.Unseal)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "status"); err != nil || !strings.Contains(out, "unseal method: keyfile") {
		t.Fatalf("the key file no longer unseals: %v\n%s", err, out)
	}
	other := filepath.Join(t.TempDir(), "new")
	err = run("--data", other, "init", "--unseal", "shamir", "--threshold", "2", "--shares", "3")
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("init with shares that cannot be shown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "strongroom.db")); err == nil {
		t.Fatal("init left a keystore behind")
	}
}

// TestStaleOfficerPINFileSparesLastTry: officer.pin is a stored PIN: a stale
// one is not tried on the officer's last login before it locks (found by a
// review: six commands with an old officer.pin locked the officer), and the
// error names the file.
func TestStaleOfficerPINFileSparesLastTry(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	pinFile := filepath.Join(dir, "officer.pin")
	good, err := os.ReadFile(pinFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinFile, []byte("not-the-officer-pin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvOfficerPIN, "")
	var last error
	for range 8 {
		_, last = runCA(t, "--data", dir, "hsm", "users", "list")
		if last == nil {
			t.Fatal("a wrong officer.pin logged in")
		}
	}
	if !strings.Contains(last.Error(), "officer.pin") || !strings.Contains(last.Error(), "locks at the next") {
		t.Fatalf("after 8 tries with a stale officer.pin: %v", last)
	}
	t.Setenv(config.EnvOfficerPIN, strings.TrimSpace(string(good)))
	if out, err := runCA(t, "--data", dir, "hsm", "users", "list"); err != nil {
		t.Fatalf("the right PIN after a stale officer.pin: %v\n%s", err, out)
	}
}
