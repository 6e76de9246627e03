package e2e

import (
	"strings"
	"testing"
)

// TestConsoleInBrowser drives the console of a real ca serve with headless
// Chromium: sign in with the admin key, issue a certificate from a pasted
// CSR, open it, revoke it, see it listed as revoked, and read and verify
// the HSM audit log.
func TestConsoleInBrowser(t *testing.T) {
	c := StartCA(t, Options{})
	b := startBrowser(t)
	b.open(c.HTTPSURL + "/ui/")
	b.waitURL("/ui/login")
	b.typeInto("#key", c.AdminKey())
	b.click("#signin")
	b.waitURL("/ui/certificates")
	b.open(c.HTTPSURL + "/ui/issue")
	b.typeInto("#csr", string(goCSR(t, "console.localhost")))
	b.click("#issue")
	serial := b.text("#issued")
	if chain := b.text("#chain"); strings.Count(chain, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("issued chain: %s", chain)
	}
	b.click("#issued")
	if got := b.waitText("#serial", func(s string) bool { return s == serial }); got != serial {
		t.Fatalf("detail page of %s shows %s", serial, got)
	}
	b.click("#revoke")
	if st := b.waitText("#status", func(s string) bool { return strings.HasPrefix(s, "revoked") }); !strings.HasPrefix(st, "revoked") {
		t.Fatalf("after revoking: %q", st)
	}
	b.open(c.HTTPSURL + "/ui/certificates?status=revoked")
	if table := b.text("#certificates"); !strings.Contains(table, serial) {
		t.Fatalf("revoked list lacks %s:\n%s", serial, table)
	}
	// The HSM's audit log: the serve process's own entries, and a
	// verified hash chain.
	b.open(c.HTTPSURL + "/ui/audit")
	if log := b.text("#audit"); !strings.Contains(log, "key.generate") || !strings.Contains(log, "login") {
		t.Fatalf("audit page:\n%s", log)
	}
	b.click("#verify")
	if got := b.waitText("#chain", func(s string) bool { return strings.Contains(s, "intact") }); !strings.Contains(got, "Hash chain intact") {
		t.Fatalf("chain check: %q", got)
	}
}
