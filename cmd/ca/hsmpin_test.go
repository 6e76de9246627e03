package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
)

// TestUnlockWithUnsealAndPINChange: a review found that the only officer,
// once locked, could be unlocked by no one, and that no command changed a
// PIN. The unseal holders unlock any user; `ca hsm users pin` changes one,
// a wrong old PIN counting as a failed login.
func TestUnlockWithUnsealAndPINChange(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	t.Setenv(config.EnvOfficerPIN, "wrong-officer-pin")
	for range 5 {
		runCA(t, "--data", dir, "hsm", "users", "list")
	}
	officerPIN, _ := os.ReadFile(filepath.Join(dir, "officer.pin"))
	t.Setenv(config.EnvOfficerPIN, strings.TrimSpace(string(officerPIN)))
	if _, err := runCA(t, "--data", dir, "hsm", "users", "unlock", "officer"); err == nil {
		t.Fatal("a locked officer unlocked itself")
	}
	out, err := runCA(t, "--data", dir, "hsm", "users", "unlock", "officer", "--with-unseal")
	if err != nil || !strings.Contains(out, "unlocked") {
		t.Fatalf("unlock --with-unseal: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "users", "list"); err != nil {
		t.Fatalf("the officer after the unlock: %v\n%s", err, out)
	}

	// A wrong old PIN is a failed login.
	t.Setenv(config.EnvHSMPIN, "not-the-ca-pin")
	t.Setenv("STRONGROOM_NEW_PIN", "new-ca-pin-1")
	if _, err := runCA(t, "--data", dir, "hsm", "users", "pin", "ca"); err == nil {
		t.Fatal("PIN changed with a wrong old PIN")
	}
	if out, _ := runCA(t, "--data", dir, "hsm", "users", "list"); !hasFailures(out, "ca", "1") {
		t.Fatalf("the wrong old PIN was not counted:\n%s", out)
	}
	// The old PIN from ca.pin; the file then holds the new one.
	os.Unsetenv(config.EnvHSMPIN)
	out, err = runCA(t, "--data", dir, "hsm", "users", "pin", "ca")
	if err != nil || !strings.Contains(out, "PIN of ca changed") {
		t.Fatalf("pin: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pin")); strings.TrimSpace(string(b)) != "new-ca-pin-1" {
		t.Fatalf("ca.pin holds %q after the change", b)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "keys", "list"); err != nil || !strings.Contains(out, "intermediate") {
		t.Fatalf("the CA user with its new PIN: %v\n%s", err, out)
	}
}

// hasFailures reports whether `ca hsm users list` shows user with n failed
// logins.
func hasFailures(list, user, n string) bool {
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == user && f[3] == n {
			return true
		}
	}
	return false
}
