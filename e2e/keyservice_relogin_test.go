package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKeyServiceTurnsOnAfterUnlock: a node whose key service user was
// locked when it started answered 503 until a restart, even after the
// operator unlocked the user. Now the unlock turns the key service on
// within seconds, and a user deleted under a running key service and
// created again (as a crypto user: an auditor serves nothing) brings it
// back the same way.
func TestKeyServiceTurnsOnAfterUnlock(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status := keyServiceStatus(t, c)
	lockApps(t, ctx, c)
	c.Restart()
	if code, body := status(); code != 503 || !strings.Contains(body, "no restart") {
		t.Fatalf("key service with its user locked: %d %s", code, body)
	}
	c.MustCLI(t, ctx, "hsm", "users", "unlock", "apps", "--with-unseal")
	waitFor(t, "the key service to turn on after the unlock", func() bool { code, _ := status(); return code == 200 })
	waitFor(t, "the log that the key service is on", func() bool { return strings.Contains(c.Output(), "the key service (/api/v1/keys) is on") })

	c.MustCLI(t, ctx, "hsm", "users", "delete", "apps")
	waitFor(t, "the key service to turn off after its user was deleted", func() bool { code, _ := status(); return code == 503 })
	// As in a keystore from before the key service: the log names the
	// missing user and how to create it, and no login is tried.
	waitFor(t, "the log that the user is missing", func() bool {
		return strings.Contains(c.Output(), "the HSM has no user apps") && strings.Contains(c.Output(), "ca hsm users create apps --role user")
	})
	create := func(role string) {
		if out, err := cliWithEnv(ctx, c, []string{"STRONGROOM_NEW_PIN=" + readPIN(t, c.Dir)}, "hsm", "users", "create", "apps", "--role", role); err != nil {
			t.Fatalf("re-creating apps as %s: %v\n%s", role, err, out)
		}
	}
	// An auditor logs in but uses no keys: the service stays off.
	create("auditor")
	waitFor(t, "the login as an auditor", func() bool { return strings.Contains(c.Output(), "apps is auditor: not a crypto user") })
	if code, body := status(); code != 503 {
		t.Fatalf("key service as an auditor: %d %s", code, body)
	}
	c.MustCLI(t, ctx, "hsm", "users", "delete", "apps")
	create("user")
	waitFor(t, "the key service to turn on after its user was re-created", func() bool { code, _ := status(); return code == 200 })
}

// TestKeyServiceWrongPINTriesOnce: a node with a wrong PIN for its key
// service user must not lock that user by retrying. It starts with the
// user locked; after the unlock it tries one login (the failure counter is
// 1, and stays 1), and after the operator corrects the node's PIN file,
// one more, which succeeds.
func TestKeyServiceWrongPINTriesOnce(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status := keyServiceStatus(t, c)
	lockApps(t, ctx, c)
	right := readPIN(t, c.Dir)
	writePIN(t, c.Dir, "wrong-apps-pin-9")
	c.Restart()
	if code, body := status(); code != 503 {
		t.Fatalf("key service with its user locked and a wrong PIN: %d %s", code, body)
	}
	c.MustCLI(t, ctx, "hsm", "users", "unlock", "apps", "--with-unseal")
	waitFor(t, "the one login after the unlock", func() bool { return strings.Contains(c.Output(), "the one login tried failed") })
	// A node retrying would fail at every look (2 s) and lock the user
	// again at the fifth.
	time.Sleep(6 * time.Second)
	if locked, failures := appsUserState(t, ctx, c); locked || failures != 1 {
		t.Fatalf("after the unlock: locked %v, %d failed logins; want one\n%s", locked, failures, c.Output())
	}
	if code, body := status(); code != 503 {
		t.Fatalf("key service with a wrong PIN after the unlock: %d %s", code, body)
	}
	writePIN(t, c.Dir, right)
	waitFor(t, "the key service to turn on with the corrected PIN file", func() bool { code, _ := status(); return code == 200 })
	if locked, failures := appsUserState(t, ctx, c); locked || failures != 0 {
		t.Fatalf("after the corrected PIN: locked %v, %d failed logins", locked, failures)
	}
}

// TestKeyServiceTamperedUserTriesOnce: the key service's user, its record
// altered in the database under a running server (its MAC no longer
// verifies), loses its session, and the node tries one login, refused as
// tampered, not one every look; once the record is put back as it was, one
// more login turns the service on.
func TestKeyServiceTamperedUserTriesOnce(t *testing.T) {
	c := StartCA(t, Options{})
	status := keyServiceStatus(t, c)
	if code, body := status(); code != 200 {
		t.Fatalf("key service at start: %d %s", code, body)
	}
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mac []byte
	if err := db.QueryRow(`SELECT mac FROM hsm_users WHERE name = 'apps'`).Scan(&mac); err != nil || len(mac) == 0 {
		t.Fatalf("the apps user's MAC: %x %v", mac, err)
	}
	setMAC := func(v []byte) {
		t.Helper()
		if _, err := db.Exec(`UPDATE hsm_users SET mac = ? WHERE name = 'apps'`, v); err != nil {
			t.Fatal(err)
		}
	}
	refused := func() (n int) {
		t.Helper()
		if err := db.QueryRow(`SELECT COUNT(*) FROM hsm_audit WHERE object = 'apps' AND action = 'login.fail'
			AND details LIKE '%reason=tampered-user%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	setMAC(append([]byte{mac[0] ^ 1}, mac[1:]...))
	waitFor(t, "the key service to turn off", func() bool { code, _ := status(); return code == 503 })
	waitFor(t, "the one login refused as tampered", func() bool { return refused() == 1 })
	// A node retrying would be refused at every look (2 s).
	time.Sleep(6 * time.Second)
	if n := refused(); n != 1 {
		t.Fatalf("%d logins refused as tampered, want one\n%s", n, c.Output())
	}
	setMAC(mac)
	waitFor(t, "the key service to turn on with the record put back", func() bool { code, _ := status(); return code == 200 })
}

// lockApps locks the apps user with five wrong PINs at `ca hsm users pin`
// (each a failed login). A running key service goes on: a lockout ends no
// session.
func lockApps(t *testing.T, ctx context.Context, c *CA) {
	t.Helper()
	for i := range 5 {
		if out, err := cliWithEnv(ctx, c, []string{fmt.Sprintf("STRONGROOM_APPS_PIN=wrong-apps-pin-%d", i), "STRONGROOM_NEW_PIN=never-used-pin"},
			"hsm", "users", "pin", "apps"); err == nil {
			t.Fatalf("a wrong PIN was taken:\n%s", out)
		}
	}
	if locked, _ := appsUserState(t, ctx, c); !locked {
		t.Fatal("five wrong PINs did not lock apps")
	}
}

// keyServiceStatus makes an API key with the keys scope and returns a
// lister that reports GET /keys's status and body.
func keyServiceStatus(t *testing.T, c *CA) func() (int, string) {
	key := c.NewAPIKey(t, "--name", "app", "--scopes", "keys")
	return func() (int, string) {
		resp, b := apiCall(t, c, "GET", "/keys", key, "", "", nil)
		return resp.StatusCode, string(b)
	}
}

// appsUserState is the apps user's row as `ca hsm users list` shows it.
func appsUserState(t *testing.T, ctx context.Context, c *CA) (locked bool, failures int) {
	t.Helper()
	out := c.MustCLI(t, ctx, "hsm", "users", "list")
	m := regexp.MustCompile(`(?m)^apps\s+\S+\s+(true|false)\s+(\d+)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no apps user in:\n%s", out)
	}
	fmt.Sscan(m[2], &failures)
	return m[1] == "true", failures
}

// cliWithEnv is c.CLI with extra environment.
func cliWithEnv(ctx context.Context, c *CA, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, caBinary, append(args, "--data", c.Dir)...)
	cmd.Env = append(append(os.Environ(), c.env...), env...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readPIN(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "apps.pin"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func writePIN(t testing.TB, dir, pin string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "apps.pin"), []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeyServiceUserDeletedOutsideHSM: the key service's user deleted in
// the database (not by an officer) is missing: the log says so and names
// the unseal holders' re-creation, not the creation an officer would do
// (which a review saw hand the user's keys to the officer's PIN), and an
// officer's create is refused. The re-creation brings the service back.
func TestKeyServiceUserDeletedOutsideHSM(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status := keyServiceStatus(t, c)
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM hsm_users WHERE name = 'apps'`); err != nil {
		t.Fatal(err)
	}
	c.Restart()
	if code, _ := status(); code != 503 {
		t.Fatalf("key service with its user deleted: %d", code)
	}
	waitFor(t, "the log that the user was deleted outside the HSM", func() bool {
		return strings.Contains(c.Output(), "its HSM user apps was deleted outside the HSM") && strings.Contains(c.Output(), "ca hsm users reset apps --role user")
	})
	pin := readPIN(t, c.Dir)
	if out, err := cliWithEnv(ctx, c, []string{"STRONGROOM_NEW_PIN=" + pin}, "hsm", "users", "create", "apps", "--role", "user"); err == nil || !strings.Contains(out, "deleted outside the HSM") {
		t.Fatalf("an officer creating the missing apps user: %v\n%s", err, out)
	}
	if out, err := cliWithEnv(ctx, c, []string{"STRONGROOM_NEW_PIN=" + pin}, "hsm", "users", "reset", "apps", "--role", "user"); err != nil {
		t.Fatalf("the unseal holders re-creating apps: %v\n%s", err, out)
	}
	waitFor(t, "the key service to turn on after its user was re-created", func() bool { code, _ := status(); return code == 200 })
}
