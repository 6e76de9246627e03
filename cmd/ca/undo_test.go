package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestFailedInitLeavesNothing: a review saw a failed `ca init` leave
// officer.pin and strongroom.db behind, so the corrected retry failed with
// "officer.pin: file exists". Bad arguments are refused before anything is
// written; a failure removes what the run created, never what was there.
func TestFailedInitLeavesNothing(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	for _, args := range [][]string{
		{"--threshold", "6", "--shares", "5"},
		{"--threshold", "1", "--shares", "5"},
	} {
		_, err := runCA(t, append([]string{"--data", fresh, "init", "--unseal", "shamir"}, args...)...)
		if err == nil {
			t.Fatalf("init %v succeeded", args)
		}
		if names := dirNames(t, fresh); names != nil {
			t.Fatalf("init %v failed (%v) but left %v", args, err, names)
		}
	}
	// A directory that existed keeps what it held.
	kept := filepath.Join(base, "kept")
	os.MkdirAll(kept, 0o700)
	os.WriteFile(filepath.Join(kept, "notes.txt"), []byte("mine"), 0o600)
	if _, err := runCA(t, "--data", kept, "init", "--unseal", "shamir", "--threshold", "6", "--shares", "5"); err == nil {
		t.Fatal("init succeeded")
	}
	if names := dirNames(t, kept); !slices.Equal(names, []string{"notes.txt"}) {
		t.Fatalf("after a failed init the directory holds %v", names)
	}
	if out, err := runCA(t, "--data", kept, "init", "--unseal", "shamir", "--threshold", "2", "--shares", "3"); err != nil {
		t.Fatalf("the corrected retry: %v\n%s", err, out)
	}
}

// TestFailedRestoreLeavesNothing: a failed restore said "nothing was
// written" but left strongroom.db and a default strongroom.yaml that the
// next, successful restore kept silently.
func TestFailedRestoreLeavesNothing(t *testing.T) {
	base := t.TempDir()
	old, fresh, file := filepath.Join(base, "old"), filepath.Join(base, "new"), filepath.Join(base, "b.srbk")
	if out, err := runCA(t, "--data", old, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", old, "hsm", "backup", "--out", file); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	os.MkdirAll(fresh, 0o700)
	os.WriteFile(filepath.Join(fresh, "unseal.key"), []byte(strings.Repeat("x", 32)), 0o600) // the wrong key
	if _, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file); err == nil {
		t.Fatal("restore with the wrong key file succeeded")
	}
	if names := dirNames(t, fresh); !slices.Equal(names, []string{"unseal.key"}) {
		t.Fatalf("after a failed restore the directory holds %v", names)
	}
	key, _ := os.ReadFile(filepath.Join(old, "unseal.key"))
	os.WriteFile(filepath.Join(fresh, "unseal.key"), key, 0o600)
	if out, err := runCA(t, "--data", fresh, "hsm", "restore", "--in", file, "--from-dir", old); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
}

// TestCLIExitCodes: unknown subcommands and a status whose unseal fails
// exit non-zero (a review saw help printed and exit 0).
func TestCLIExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"hsm", "bogus"}, {"hsm", "users", "bogus"}, {"hsm", "keys", "destroy"}} {
		if _, err := runCA(t, append([]string{"--data", dir}, args...)...); err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("ca %v: %v", args, err)
		}
	}
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "unseal.key"), []byte(strings.Repeat("x", 32)), 0o600)
	if _, err := runCA(t, "--data", dir, "hsm", "status"); err == nil || !strings.Contains(err.Error(), "could not be unsealed") {
		t.Fatalf("status with the wrong key file: %v", err)
	}
}

// TestLooseSecretFilesWarned: an unseal key or PIN file others can read is
// named on stderr (a review found no warning at all).
func TestLooseSecretFilesWarned(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, _ := runCA(t, "--data", dir, "hsm", "keys", "list")
	if strings.Contains(out, "warning:") {
		t.Fatalf("warning for 0600 files:\n%s", out)
	}
	os.Chmod(filepath.Join(dir, "unseal.key"), 0o644)
	os.Chmod(filepath.Join(dir, "ca.pin"), 0o640)
	out, _ = runCA(t, "--data", dir, "hsm", "keys", "list")
	for _, f := range []string{"unseal.key is accessible to other users (mode 0644)", "ca.pin is accessible to other users (mode 0640)"} {
		if !strings.Contains(out, f) {
			t.Fatalf("no warning %q:\n%s", f, out)
		}
	}
}
