package main

import (
	"os"
	"path/filepath"
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

// TestNoNewPIN: a command that sets a PIN and finds none (no
// STRONGROOM_NEW_PIN, nothing on stdin) says where it reads one from,
// rather than refusing an empty PIN as too short (a README reader was
// left guessing).
func TestNoNewPIN(t *testing.T) {
	dir := t.TempDir()
	if out, err := runCA(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	t.Setenv(config.EnvOfficerPIN, "") // officer.pin
	t.Setenv("STRONGROOM_NEW_PIN", "")
	for _, args := range [][]string{
		{"hsm", "users", "create", "carol", "--role", "user"},
		{"hsm", "users", "pin", "apps"},
		{"hsm", "users", "reset", "apps", "--role", "user"},
	} {
		_, err := runCA(t, append([]string{"--data", dir}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "no new PIN given: set STRONGROOM_NEW_PIN or type it on stdin") {
			t.Errorf("ca %s without a new PIN: %v", strings.Join(args, " "), err)
		}
	}
}

// TestInitRedisPrefix: `ca init --redis` writes the Redis prefix into the
// configuration (the default spelled out, so the file shows where each
// cluster sets its own: a README reader found `prefix: ""`), and
// --redis-prefix sets it.
func TestInitRedisPrefix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--redis", "127.0.0.1:6379"}, "strongroom:"},
		{[]string{"--redis", "127.0.0.1:6379", "--redis-prefix", "ca-prod:"}, "ca-prod:"},
	} {
		dir := t.TempDir()
		if out, err := runCA(t, append([]string{"--data", dir, "init"}, tc.args...)...); err != nil {
			t.Fatalf("init %v: %v\n%s", tc.args, err, out)
		}
		c, err := config.Load(dir)
		if err != nil || c.Redis.Prefix != tc.want {
			t.Fatalf("init %v: prefix %q (%v), want %q", tc.args, c.Redis.Prefix, err, tc.want)
		}
	}
	dir := filepath.Join(t.TempDir(), "d")
	if _, err := runCA(t, "--data", dir, "init", "--redis-prefix", "x:"); err == nil || !strings.Contains(err.Error(), "--redis-prefix needs --redis") {
		t.Fatalf("--redis-prefix without --redis: %v", err)
	}
	if _, err := runCA(t, "--data", dir, "init", "--redis", "127.0.0.1:6379", "--redis-prefix", "no spaces"); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Fatalf("a bad prefix: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused init left %s: %v", dir, err)
	}
}
