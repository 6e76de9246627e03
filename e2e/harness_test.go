package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// caBinary is built once per test run by TestMain.
var caBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strongroom-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caBinary = filepath.Join(dir, "ca")
	build := exec.Command("go", "build", "-tags", "nomsgpack", "-o", caBinary, "../cmd/ca")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ca:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// CA is a running `ca serve` on a fresh data directory.
type CA struct {
	t        testing.TB
	Dir      string
	HTTPSURL string // e.g. https://localhost:41234
	HTTPURL  string // e.g. http://localhost:41235
	// Root, Intermediate and AdminKeyFile are paths in Dir.
	Root, Intermediate, AdminKeyFile string
	// Client trusts Root and talks to HTTPSURL.
	Client *http.Client
	// InitOutput is what `ca init` printed (Shamir shares, for one).
	InitOutput string

	env []string
	mu  sync.Mutex
	cmd *exec.Cmd
	out *syncBuffer
}

// Options change how StartCA initialises the CA.
type Options struct {
	// InitArgs are extra `ca init` flags (e.g. --key-type rsa2048).
	InitArgs []string
	// Configure may edit the data directory (e.g. strongroom.yaml) after
	// init and before serve.
	Configure func(t testing.TB, dir string)
	// Env is added to the serve process's environment.
	Env []string
	// Sealed says serve will wait for an operator to unseal (Shamir or an
	// interactive passphrase): StartCA does not wait for readiness; call
	// WaitReady after unsealing.
	Sealed bool
}

// StartCA initialises a CA in a temp dir with free ports and serves it
// until the test ends.
func StartCA(t testing.TB, o Options) *CA {
	t.Helper()
	dir := t.TempDir()
	httpsPort, httpPort := challengetest.FreePort(t), challengetest.FreePort(t)
	args := append([]string{"init", "--data", dir,
		"--listen-https", fmt.Sprintf("127.0.0.1:%d", httpsPort),
		"--listen-http", fmt.Sprintf("127.0.0.1:%d", httpPort)}, o.InitArgs...)
	initCmd := exec.Command(caBinary, args...)
	initCmd.Env = append(os.Environ(), o.Env...)
	initOut, err := initCmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ca init: %v\n%s", err, initOut)
	}
	if o.Configure != nil {
		o.Configure(t, dir)
	}
	c := &CA{t: t, Dir: dir,
		HTTPSURL:     fmt.Sprintf("https://localhost:%d", httpsPort),
		HTTPURL:      fmt.Sprintf("http://localhost:%d", httpPort),
		Root:         filepath.Join(dir, "root.pem"),
		Intermediate: filepath.Join(dir, "intermediate.pem"),
		AdminKeyFile: filepath.Join(dir, "admin.key"),
		InitOutput:   string(initOut),
	}
	pool := x509.NewCertPool()
	rootPEM, err := os.ReadFile(c.Root)
	if err != nil || !pool.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("reading root: %v", err)
	}
	c.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c.env = o.Env
	t.Cleanup(c.Stop)
	c.start()
	if !o.Sealed {
		c.WaitReady()
	}
	return c
}

func (c *CA) start() {
	c.t.Helper()
	c.mu.Lock()
	c.out = &syncBuffer{}
	c.cmd = exec.Command(caBinary, "serve", "--data", c.Dir)
	c.cmd.Env = append(os.Environ(), c.env...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		c.mu.Unlock()
		c.t.Fatalf("starting ca serve: %v", err)
	}
	c.mu.Unlock()
}

// WaitReady waits up to 30 s for /readyz to answer 200.
func (c *CA) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Client.Get(c.HTTPSURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("ca serve did not become ready; output:\n%s", c.Output())
}

// Stop ends the serve process (SIGTERM, then kill after 10 s).
func (c *CA) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// Restart stops and starts the same data directory.
func (c *CA) Restart() {
	c.Stop()
	c.start()
	c.WaitReady()
}

// Output is everything the serve process printed so far.
func (c *CA) Output() string { return c.out.String() }

// AdminKey is the admin API key written at initialisation.
func (c *CA) AdminKey() string {
	b, err := os.ReadFile(c.AdminKeyFile)
	if err != nil {
		c.t.Fatalf("reading admin key: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// CLI runs a ca subcommand against the data directory.
func (c *CA) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, caBinary, append(args, "--data", c.Dir)...)
	// The node's environment (e.g. STRONGROOM_DATABASE_DSN): without it a
	// CLI command would read another database than the server's.
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustCLI is CLI that fails the test when the command fails.
func (c *CA) MustCLI(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := c.CLI(ctx, args...)
	if err != nil {
		t.Fatalf("ca %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// NewAPIKey runs `ca apikey create` with args (--name, --scopes, …) and
// returns the new key's secret.
func (c *CA) NewAPIKey(t testing.TB, args ...string) string {
	t.Helper()
	out := c.MustCLI(t, context.Background(), append([]string{"apikey", "create"}, args...)...)
	m := apiKeySecret.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no secret in `ca apikey create` output:\n%s", out)
	}
	return m[1]
}

var apiKeySecret = regexp.MustCompile(`secret:\s+(srk_\S+)`)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requireTool skips (or fails, when services are required) if a binary is
// missing.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "%s is not installed (make deps installs it)", name)
	}
	return p
}

// unavailable skips the test because something it needs from the machine
// is missing, or fails it when STRONGROOM_REQUIRE_SERVICES=1 (CI), where a
// skip would hide that the test never ran.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv("STRONGROOM_REQUIRE_SERVICES") == "1" {
		t.Fatalf("required but unavailable: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// appendConfig adds YAML to the data directory's strongroom.yaml (an
// Options.Configure step).
func appendConfig(t testing.TB, dir, yaml string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "strongroom.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(yaml); err != nil {
		t.Fatal(err)
	}
}
