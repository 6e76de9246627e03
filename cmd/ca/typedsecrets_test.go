package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
)

// TestSecretsTyped: the officer's PIN and a backup passphrase could only
// come from an environment variable (or officer.pin), which puts them in
// the shell's history as `VAR=... ca …` (found by a review). Each is typed
// on stdin when neither is set: the backup passphrase twice, a mismatch
// and none at all refused with nothing written.
func TestSecretsTyped(t *testing.T) {
	base := t.TempDir()
	dir, fresh, file := filepath.Join(base, "ca"), filepath.Join(base, "new"), filepath.Join(base, "b.srbk")
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	pin, err := os.ReadFile(filepath.Join(dir, "officer.pin"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "officer.pin"))
	t.Setenv(config.EnvOfficerPIN, "")
	if _, err := runCA(t, "--data", dir, "hsm", "users", "list"); err == nil || !strings.Contains(err.Error(), "or type it on stdin") {
		t.Fatalf("users list with no officer PIN anywhere: %v", err)
	}
	if out, err := runCAIn(t, string(pin), "--data", dir, "hsm", "users", "list"); err != nil || !strings.Contains(out, "PIN of officer officer: ") || !strings.Contains(out, "apps") {
		t.Fatalf("users list with the PIN typed: %v\n%s", err, out)
	}
	// The officer's PIN, then the new user's, on one stdin.
	t.Setenv("STRONGROOM_NEW_PIN", "")
	if out, err := runCAIn(t, strings.TrimSpace(string(pin))+"\ndave-pin-123456\n", "--data", dir, "hsm", "users", "create", "dave"); err != nil || !strings.Contains(out, "user dave created") {
		t.Fatalf("users create with both PINs typed: %v\n%s", err, out)
	}

	t.Setenv(envBackupPassphrase, "")
	for stdin, want := range map[string]string{"": "no backup passphrase", "one passphrase\nanother\n": "the two backup passphrases differ"} {
		if _, err := runCAIn(t, stdin, "--data", dir, "hsm", "backup", "--passphrase", "--out", file); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("backup --passphrase with %q typed: %v, want %q", stdin, err, want)
		}
		if _, err := os.Stat(file); err == nil {
			t.Fatal("a refused backup wrote its file")
		}
	}
	const pass = "a typed backup passphrase"
	if out, err := runCAIn(t, pass+"\n"+pass+"\n", "--data", dir, "hsm", "backup", "--passphrase", "--out", file); err != nil {
		t.Fatalf("backup with the passphrase typed twice: %v\n%s", err, out)
	}
	t.Setenv(envNewPassphrase, "the new HSM passphrase")
	if _, err := runCAIn(t, "not it\n", "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", dir, "--unseal", "passphrase"); err == nil {
		t.Fatal("restored with a wrong typed backup passphrase")
	}
	out, err := runCAIn(t, pass+"\n", "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", dir, "--unseal", "passphrase")
	if err != nil || !strings.Contains(out, "Backup passphrase: ") || !strings.Contains(out, "HSM unsealed with the new material") {
		t.Fatalf("restore with the backup passphrase typed: %v\n%s", err, out)
	}
}

// TestPendingPINFileNamed: `ca hsm users pin` writes the new PIN beside the
// PIN file before the change and moves it over after; a crash between
// them (a review's concern: the file kept the old PIN) leaves ca.pin.new,
// which the next failed login names.
func TestPendingPINFileNamed(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	t.Setenv(config.EnvHSMPIN, "")
	pinFile := filepath.Join(dir, "ca.pin")
	old, err := os.ReadFile(pinFile)
	if err != nil {
		t.Fatal(err)
	}
	// As if the change went through and the command stopped before the
	// move: the HSM has the new PIN, ca.pin the old one.
	t.Setenv("STRONGROOM_NEW_PIN", "new-ca-pin-77")
	if out, err := runCA(t, "--data", dir, "hsm", "users", "pin", "ca"); err != nil {
		t.Fatalf("pin: %v\n%s", err, out)
	}
	if _, err := os.Stat(pinFile + ".new"); !os.IsNotExist(err) {
		t.Fatalf("ca.pin.new left after a change that finished: %v", err)
	}
	if err := os.WriteFile(pinFile+".new", []byte("new-ca-pin-77\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinFile, old, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCA(t, "--data", dir, "hsm", "keys", "list")
	if err == nil || !strings.Contains(err.Error(), "ca.pin.new holds the PIN of a `ca hsm users pin` that stopped") {
		t.Fatalf("a login with the old PIN beside ca.pin.new: %v\n%s", err, out)
	}
}
