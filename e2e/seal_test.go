package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestShamirSealUnseal runs the production unseal path: `ca init` with
// Shamir 2-of-3 prints the shares once; `ca serve` waits sealed; `ca hsm
// unseal` with one share is refused and changes nothing, with two shares
// (through the control socket) the server starts serving; `ca hsm seal` stops
// it; unsealing again with a different pair of shares brings it back.
func TestShamirSealUnseal(t *testing.T) {
	c := StartCA(t, Options{InitArgs: []string{"--unseal", "shamir", "--threshold", "2", "--shares", "3"},
		Env: []string{"STRONGROOM_OFFICER_PIN=officer-pin-1234"}, Sealed: true})
	shares := regexp.MustCompile(`srs1-\d+-[0-9a-f]+`).FindAllString(c.InitOutput, -1)
	if len(shares) != 3 {
		t.Fatalf("ca init printed %d shares, want 3:\n%s", len(shares), c.InitOutput)
	}
	waitFor(t, "the sealed-server message", func() bool { return strings.Contains(c.Output(), "ca hsm unseal") })
	if c.ready() {
		t.Fatal("a sealed server answers ready")
	}
	// withShares runs `ca hsm <sub...>` with shares on stdin, and env.
	withSharesEnv := func(env []string, sub []string, shares ...string) (string, error) {
		cmd := exec.Command(caBinary, append(append([]string{"hsm"}, sub...), "--data", c.Dir)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(strings.Join(shares, "\n") + "\n\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	withShares := func(sub []string, shares ...string) (string, error) { return withSharesEnv(nil, sub, shares...) }
	unseal := func(shares ...string) (string, error) { return withShares([]string{"unseal"}, shares...) }
	if out, err := unseal(); err == nil || !strings.Contains(out, "no unseal material given") {
		t.Fatalf("unseal with nothing on stdin: %v\n%s", err, out)
	}
	if out, err := unseal(shares[0]); err == nil || !strings.Contains(out, "too few shares") {
		t.Fatalf("unseal with one share: %v\n%s", err, out)
	}
	forged := shares[1][:len(shares[1])-4] + "0000"
	if out, err := unseal(shares[0], forged); err == nil {
		t.Fatalf("unseal with a forged share succeeded:\n%s", out)
	}
	if c.ready() {
		t.Fatal("ready after failed unseals")
	}
	if out, err := unseal(shares[0], shares[2]); err != nil || !strings.Contains(out, "sealed: false") {
		t.Fatalf("unseal with two shares: %v\n%s", err, out)
	}
	c.WaitReady()
	// Unsealing an unsealed server reads no shares and does nothing; the
	// seal that follows must not crash the server (a review saw the stale
	// unseal signal end it with "login: hsm is sealed").
	if out, err := unseal("garbage"); err != nil || !strings.Contains(out, "already unsealed; nothing done") || strings.Contains(out, "Enter unseal shares") {
		t.Fatalf("unseal of an unsealed server: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := c.CLI(ctx, "hsm", "seal"); err != nil || !strings.Contains(out, "sealed: true") {
		t.Fatalf("ca hsm seal: %v\n%s", err, out)
	}
	waitFor(t, "the server to stop serving", func() bool { return !c.ready() })
	// A share holder needs no database credentials: the unseal goes
	// through the server's socket (a review saw it refused for want of
	// STRONGROOM_DATABASE_DSN); this one's database cannot be opened.
	noDB := []string{"STRONGROOM_DATABASE_DSN=" + filepath.Join(c.Dir, "no", "such", "dir", "x.db")}
	if out, err := withSharesEnv(noDB, []string{"unseal"}, shares[1], shares[2]); err != nil || !strings.Contains(out, "sealed: false") {
		t.Fatalf("unseal again (through the running server, with no database): %v\n%s", err, out)
	}
	c.WaitReady()
	// verify unseals its own module to check the MACs: without shares it
	// cannot, and says so with a failure; with two it checks them.
	if out, err := c.CLI(ctx, "hsm", "audit", "verify"); err == nil || !strings.Contains(out, "could not be checked") {
		t.Fatalf("audit verify without shares: %v\n%s", err, out)
	}
	if out, err := withShares([]string{"audit", "verify"}, shares[0], shares[1]); err != nil || !strings.Contains(out, "intact") || !strings.Contains(out, "head MAC verified") {
		t.Fatalf("audit verify after seal/unseal: %v\n%s", err, out)
	}
}

func (c *CA) ready() bool {
	resp, err := c.Client.Get(c.HTTPSURL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitFor is the package's waitFor that shows the server's output when it
// times out.
func (c *CA) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("timed out waiting for %s; the server said:\n%s", what, c.Output())
	}
}

// poll tries cond every 100 ms for 20 s.
func poll(cond func() bool) bool {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// TestAutoUnsealSealSticks: an operator's seal holds on a server that
// unseals by itself (key file): it stops serving and stays sealed — a
// review saw it unseal again at once — until `ca hsm unseal`, which uses
// the configured key file without asking for anything.
func TestAutoUnsealSealSticks(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := c.CLI(ctx, "hsm", "seal"); err != nil || !strings.Contains(out, "sealed: true") {
		t.Fatalf("ca hsm seal: %v\n%s", err, out)
	}
	waitFor(t, "the server to stop serving", func() bool { return !c.ready() })
	// status opens its own module, which unseals from the key file; it
	// also says what the running server's is (a review saw "sealed: false").
	if out := c.MustCLI(t, ctx, "hsm", "status"); !strings.Contains(out, "running server: sealed: true") {
		t.Fatalf("ca hsm status while the server is sealed:\n%s", out)
	}
	for range 30 { // 3 s: the old loop was serving again within one
		if c.ready() {
			t.Fatalf("the server unsealed itself after an operator's seal:\n%s", c.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd := exec.CommandContext(ctx, caBinary, "hsm", "unseal", "--data", c.Dir)
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "sealed: false") {
		t.Fatalf("ca hsm unseal: %v\n%s", err, out)
	}
	c.WaitReady()
}

// TestUnsealWhenCACannotStart: a review locked the CA's HSM user (five
// wrong PINs at the CLI: the running CA keeps serving), sealed and
// unsealed; `ca hsm unseal` said "sealed: false" and the server exited.
// Now the unseal reports that the CA could not start, the node waits
// sealed, and unlocking the user and unsealing again brings it back.
func TestUnsealWhenCACannotStart(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := func(stdin string, env []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, caBinary, append(args, "--data", c.Dir)...)
		cmd.Env = append(append(os.Environ(), c.env...), env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i := range 5 {
		if out, err := cli("", []string{fmt.Sprintf("STRONGROOM_HSM_PIN=wrong-pin-%d", i)}, "hsm", "keys", "list"); err == nil {
			t.Fatalf("a wrong PIN was taken:\n%s", out)
		}
	}
	if !c.ready() {
		t.Fatal("the lockout stopped the running CA")
	}
	c.MustCLI(t, ctx, "hsm", "seal")
	waitFor(t, "the server to stop serving", func() bool { return !c.ready() })
	out, err := cli("", nil, "hsm", "unseal")
	if err == nil || !strings.Contains(out, "could not start") {
		t.Fatalf("ca hsm unseal with the CA's user locked: %v\n%s", err, out)
	}
	if out, err := cli("", nil, "hsm", "users", "unlock", "ca", "--with-unseal"); err != nil {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	if out, err := cli("", nil, "hsm", "unseal"); err != nil || !strings.Contains(out, "sealed: false") {
		t.Fatalf("ca hsm unseal after the unlock: %v\n%s", err, out)
	}
	c.WaitReady()
}
