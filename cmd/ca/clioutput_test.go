package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/config"
)

// TestEveryCommandHasAShortHelp: `ca help` and each group's help list
// every subcommand with a one-line description (a review found hsm users
// delete and list, hsm keys list, apikey list and revoke, and acme eab
// revoke listed with none).
func TestEveryCommandHasAShortHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" {
			t.Errorf("%q has no Short description", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
}

// TestCommandsSayWhatTheyDid: commands that change something print one
// line saying what they did (a review saw hsm users create and unlock,
// and with them delete and acme eab revoke, succeed in silence).
func TestCommandsSayWhatTheyDid(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	t.Setenv(config.EnvOfficerPIN, "") // officer.pin
	t.Setenv("STRONGROOM_NEW_PIN", "bob-pin-123456")
	eab, err := runCA(t, "--data", dir, "acme", "eab", "create")
	kid := regexp.MustCompile(`kid: +(\S+)`).FindStringSubmatch(eab)
	if err != nil || kid == nil {
		t.Fatalf("eab create: %v\n%s", err, eab)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"hsm", "users", "create", "bob", "--role", "auditor"}, "user bob created with role auditor (audited)\n"},
		{[]string{"hsm", "users", "unlock", "bob"}, "user bob: unlocked, failed logins reset, by officer (audited)\n"},
		{[]string{"hsm", "users", "delete", "bob"}, "user bob deleted; its open sessions end (audited)\n"},
		{[]string{"acme", "eab", "revoke", kid[1]}, "EAB key " + kid[1] + " revoked: it binds no new account; accounts bound with it stay valid\n"},
	} {
		out, err := runCA(t, append([]string{"--data", dir}, c.args...)...)
		if err != nil || out != c.want {
			t.Errorf("ca %s: %v, printed %q, want %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
}
