package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm"
)

// TestMissingKeyCLI: a review deleted the intermediate key's rows and `ca
// hsm status` said all was well. Status lists it as MISSING, with the label
// and creator of its authenticated creation entry, and exits non-zero;
// destroy-damaged refuses to record a CA key's loss (restore it) and
// records another key's, after which status no longer lists it.
func TestMissingKeyCLI(t *testing.T) {
	dir := initAltered(t, `DELETE FROM hsm_objects WHERE label = 'intermediate'`)
	out, err := runCA(t, "--data", dir, "hsm", "status")
	if err == nil || !strings.Contains(err.Error(), "1 damaged objects") || !strings.Contains(out, "MISSING") ||
		!strings.Contains(out, `label="intermediate" owner="ca"`) || !strings.Contains(out, "deleted outside the HSM") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	ca := regexp.MustCompile(`MISSING ([0-9a-f]{32})`).FindStringSubmatch(out)[1]
	if out, err := runCA(t, "--data", dir, "hsm", "keys", "destroy-damaged", ca); err == nil || !strings.Contains(err.Error(), "is the CA key intermediate") {
		t.Fatalf("destroy-damaged on the missing CA key: %v\n%s", err, out)
	}
	ctx := context.Background()
	n, err := openNode(ctx, dir, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	k := scratchKey(t, n)
	if _, err := n.db.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ?`, k.ID); err != nil {
		t.Fatal(err)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "keys", "destroy-damaged", k.ID); err != nil || !strings.Contains(out, "missing key "+k.ID+" (label scratch, made by ca) recorded as destroyed by officer") {
		t.Fatalf("destroy-damaged of the missing key: %v\n%s", err, out)
	}
	if out, _ := runCA(t, "--data", dir, "hsm", "status"); strings.Contains(out, k.ID) || !strings.Contains(out, ca) {
		t.Fatalf("status after destroy-damaged, want the CA key still missing and the other gone:\n%s", out)
	}
}

// TestMissingUserCLI: the CA's own user deleted in the database is listed
// by `ca hsm status` as MISSING, which exits non-zero; `ca hsm users reset`
// re-creates it on the authority of the unseal material, with its keys.
func TestMissingUserCLI(t *testing.T) {
	dir := initAltered(t, `DELETE FROM hsm_users WHERE name = 'ca'`)
	out, err := runCA(t, "--data", dir, "hsm", "status")
	if err == nil || !strings.Contains(err.Error(), "1 users deleted outside the HSM") || !strings.Contains(out, "MISSING user ca (role user") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "users", "list"); err == nil || !strings.Contains(out, "MISSING: deleted outside the HSM") {
		t.Fatalf("users list: %v\n%s", err, out)
	}
	t.Setenv("STRONGROOM_NEW_PIN", "ca-new-pin-1234")
	out, err = runCA(t, "--data", dir, "hsm", "users", "reset", "ca", "--role", "user")
	if err != nil || !strings.Contains(out, "user ca was missing") {
		t.Fatalf("reset: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "status"); err != nil || strings.Contains(out, "MISSING") {
		t.Fatalf("status after the reset: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pin"), []byte("ca-new-pin-1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCA(t, "--data", dir, "hsm", "keys", "list"); err != nil || !strings.Contains(out, "intermediate") {
		t.Fatalf("the re-created CA user's keys: %v\n%s", err, out)
	}
}

// scratchKey unseals n's HSM as the CLI does and makes a P-256 key
// labelled "scratch" as the CA's user.
func scratchKey(t *testing.T, n *node) hsm.KeyInfo {
	t.Helper()
	ctx := context.Background()
	if err := unsealForCLI(ctx, rootCommand(), n); err != nil {
		t.Fatal(err)
	}
	s, err := n.caSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.GenerateKey(ctx, hsm.KeySpec{Type: hsm.P256, Label: "scratch"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
