package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestAPIKeyRevokeBySecret: a key found leaked is revoked by its secret
// (a review saw `ca apikey revoke srk_…` repeat the secret back in "no API
// key has id"); the secret is never printed, and a secret of no key is
// refused without it.
func TestAPIKeyRevokeBySecret(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err := runCA(t, "--data", dir, "apikey", "create", "--name", "leaked", "--scopes", "read")
	m := regexp.MustCompile(`id: +(\S+)\nsecret: +(srk_\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("apikey create: %v\n%s", err, out)
	}
	id, secret := m[1], m[2]
	wrong := secret[:len(secret)-4] + "AAAA"
	if out, err := runCA(t, "--data", dir, "apikey", "revoke", wrong); err == nil || strings.Contains(err.Error()+out, wrong) {
		t.Fatalf("revoke by a secret of no key: %v\n%s", err, out)
	}
	// As found: after "Bearer ", with spaces; nothing but an id or a
	// secret is taken, and neither is repeated.
	for _, garbled := range []string{" Bearer " + wrong + " ", "x" + secret[4:]} {
		if out, err := runCA(t, "--data", dir, "apikey", "revoke", garbled); err == nil || strings.Contains(err.Error()+out, garbled[4:20]) {
			t.Fatalf("revoke %q: %v\n%s", garbled, err, out)
		}
	}
	// From stdin, off the command line.
	out, err = runCAIn(t, "Bearer "+secret+"\n", "--data", dir, "apikey", "revoke", "-")
	if err != nil || !strings.Contains(out, "API key "+id+" revoked") || strings.Contains(out, secret) {
		t.Fatalf("revoke by secret: %v\n%s", err, out)
	}
	if out, err := runCA(t, "--data", dir, "apikey", "list"); err != nil || !regexp.MustCompile(id+`.*leaked.*\d{4}-\d\d-\d\d\S*\s*$`).MatchString(strings.Split(out[strings.Index(out, id):], "\n")[0]) {
		t.Fatalf("apikey list after the revoke: %v\n%s", err, out)
	}
}
