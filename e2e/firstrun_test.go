package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// These tests check the first run (issue #2): `ca serve` on a data
// directory that does not exist initialises everything, says where things
// are, and a restart reuses the same HSM keys; the HSM audit log verifies
// and any edit is found by `ca hsm audit verify`.

// freshServe runs `ca serve` on dir, which does not exist yet, with the
// default ports 8443 and 8080 — inside its own network namespace
// (unshare -rn), so nothing else on the machine can hold those ports —
// waits for the welcome banner, stops it and returns what it printed.
func freshServe(t *testing.T, dir string) string {
	t.Helper()
	unshare := requireTool(t, "unshare")
	cmd := exec.Command(unshare, "-rn", "sh", "-c", `ip link set lo up 2>/dev/null; exec "$0" serve --data "$1"`, caBinary, dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ca serve: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Strongroom is running.") {
		select {
		case <-done:
			if strings.HasPrefix(out.String(), "unshare:") {
				t.Skipf("cannot make a network namespace for the default ports: %s", out)
			}
			t.Fatalf("ca serve on a fresh directory exited:\n%s", out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ca serve printed no welcome in 60 s:\n%s", out)
		}
	}
	return out.String()
}

// serveDir moves an initialised data directory to free ports and serves it
// with the harness until the test ends.
func serveDir(t *testing.T, dir string) *CA {
	t.Helper()
	httpsPort, httpPort := challengetest.FreePort(t), challengetest.FreePort(t)
	cfgPath := filepath.Join(dir, "strongroom.yaml")
	cfg := string(readFile(t, cfgPath))
	for _, def := range []string{"127.0.0.1:8443", "localhost:8443", "127.0.0.1:8080", "localhost:8080"} {
		if !strings.Contains(cfg, def) {
			t.Fatalf("strongroom.yaml of a fresh directory lacks the default %s:\n%s", def, cfg)
		}
	}
	cfg = strings.NewReplacer(":8443", fmt.Sprintf(":%d", httpsPort), ":8080", fmt.Sprintf(":%d", httpPort)).Replace(cfg)
	writeFile(t, cfgPath, []byte(cfg))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, filepath.Join(dir, "root.pem"))) {
		t.Fatal("root.pem holds no certificate")
	}
	c := &CA{t: t, Dir: dir,
		HTTPSURL: fmt.Sprintf("https://localhost:%d", httpsPort), HTTPURL: fmt.Sprintf("http://localhost:%d", httpPort),
		Root: filepath.Join(dir, "root.pem"), Intermediate: filepath.Join(dir, "intermediate.pem"), AdminKeyFile: filepath.Join(dir, "admin.key"),
		Client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	c.start()
	c.WaitReady()
	t.Cleanup(c.Stop)
	return c
}

// cli runs a ca subcommand that must succeed.
func cli(t *testing.T, c *CA, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.CLI(ctx, args...)
	if err != nil {
		t.Fatalf("ca %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// hsmKeys parses `ca hsm keys list`: label → "ID TYPE VERSION CREATED"
// (the use counter is left out: it changes with every signature).
func hsmKeys(t *testing.T, c *CA) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(cli(t, c, "hsm", "keys", "list")), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) != 8 {
			t.Fatalf("unexpected key line %q", line)
		}
		keys[f[1]] = strings.Join([]string{f[0], f[2], f[3], f[7]}, " ")
	}
	for _, l := range []string{"root", "intermediate"} {
		if keys[l] == "" {
			t.Fatalf("`ca hsm keys list` has no %s key: %v", l, keys)
		}
	}
	return keys
}

func TestFirstRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out := freshServe(t, dir)

	// The banner says where to start.
	for label, want := range map[string]string{
		"ACME directory":   "https://localhost:8443/acme/default/directory",
		"Root certificate": filepath.Join(dir, "root.pem"),
		"Admin API key":    filepath.Join(dir, "admin.key"),
	} {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(label) + `:\s+(\S+)`).FindStringSubmatch(out)
		if m == nil || m[1] != want {
			t.Errorf("serve output: %s is %v, want %s", label, m, want)
		}
	}
	// The files exist; the secret ones are 0600 and never printed.
	for name, mode := range map[string]os.FileMode{"admin.key": 0o600, "ca.pin": 0o600, "officer.pin": 0o600, "unseal.key": 0o600,
		"root.pem": 0, "intermediate.pem": 0, "strongroom.yaml": 0, "strongroom.db": 0} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("fresh data directory: %v", err)
		}
		if mode != 0 && fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
		if mode == 0 {
			continue
		}
		secret := readFile(t, filepath.Join(dir, name))
		for _, s := range []string{strings.TrimSpace(string(secret)), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)} {
			if len(s) >= 16 && strings.Contains(out, s) {
				t.Errorf("serve output contains the content of %s", name)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	root := parsePEMCerts(t, readFile(t, filepath.Join(dir, "root.pem")))[0]
	inter := parsePEMCerts(t, readFile(t, filepath.Join(dir, "intermediate.pem")))[0]
	if !root.IsCA || root.CheckSignatureFrom(root) != nil || !inter.IsCA || inter.CheckSignatureFrom(root) != nil {
		t.Fatal("root.pem is not a self-signed CA, or intermediate.pem is not signed by it")
	}

	c := serveDir(t, dir)
	keys := hsmKeys(t, c)
	files := map[string][]byte{}
	for _, name := range []string{"root.pem", "intermediate.pem", "admin.key", "unseal.key"} {
		files[name] = readFile(t, filepath.Join(dir, name))
	}
	c.Restart()
	if strings.Contains(c.Output(), "Initialising") || !strings.Contains(c.Output(), "ACME directory:   "+c.HTTPSURL+"/acme/default/directory") {
		t.Fatalf("restart did not just serve the existing CA:\n%s", c.Output())
	}
	after := hsmKeys(t, c)
	for _, l := range []string{"root", "intermediate"} {
		if after[l] != keys[l] {
			t.Errorf("HSM key %s was %q before the restart, %q after", l, keys[l], after[l])
		}
	}
	for name, b := range files {
		if string(readFile(t, filepath.Join(dir, name))) != string(b) {
			t.Errorf("%s changed across the restart", name)
		}
	}
	// The HSM keys still match the certificates: a fresh chain verifies
	// up to root.pem through the unchanged intermediate, and the root CRL
	// signed at this start verifies with root.pem.
	chain := issueChain(t, c, goCSR(t, "after-restart.localhost"))
	if !chain[1].Equal(inter) {
		t.Fatal("the issued chain's intermediate is not intermediate.pem")
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "after-restart.localhost"}); err != nil {
		t.Fatalf("certificate issued after the restart: %v", err)
	}
	fetchCRL(t, c, "root.crl", root)

	status := cli(t, c, "hsm", "status")
	for _, want := range []string{"initialized: true", "unseal method: keyfile", "sealed: false", "self-test: passed"} {
		if !strings.Contains(status, want) {
			t.Errorf("ca hsm status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "failure:") {
		t.Errorf("ca hsm status reports a failure:\n%s", status)
	}
	cli(t, c, "hsm", "audit", "verify")

	c.Stop() // no writer while the database is edited
	testAuditTamper(t, c)
}

// testAuditTamper edits and deletes one audit entry of the stopped CA's
// database: `ca hsm audit verify` must fail naming that entry, and pass
// again once the entry is put back.
func testAuditTamper(t *testing.T, c *CA) {
	intact := regexp.MustCompile(`audit log intact: (\d+) entries`)
	out := cli(t, c, "hsm", "audit", "verify")
	if m := intact.FindStringSubmatch(out); m == nil || !strings.Contains(out, "head MAC verified") {
		t.Fatalf("ca hsm audit verify does not say the log is intact and authenticated:\n%s", out)
	}
	db, err := sql.Open("sqlite", filepath.Join(c.Dir, "strongroom.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq, at int64
	var actor, action, object, details string
	var prev, hash []byte
	row := db.QueryRow(`SELECT seq, at, actor, action, object, details, prev_hash, hash FROM hsm_audit
		WHERE action = 'key.generate' ORDER BY seq LIMIT 1`)
	if err := row.Scan(&seq, &at, &actor, &action, &object, &details, &prev, &hash); err != nil {
		t.Fatalf("reading the audit entry of the first key generation: %v", err)
	}
	sqlExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, tc := range []struct {
		name            string
		tamper, restore func()
	}{
		{"edited details",
			func() { sqlExec(`UPDATE hsm_audit SET details = ? WHERE seq = ?`, details+` label="evil"`, seq) },
			func() { sqlExec(`UPDATE hsm_audit SET details = ? WHERE seq = ?`, details, seq) }},
		{"edited actor",
			func() { sqlExec(`UPDATE hsm_audit SET actor = 'officer' WHERE seq = ?`, seq) },
			func() { sqlExec(`UPDATE hsm_audit SET actor = ? WHERE seq = ?`, actor, seq) }},
		{"deleted",
			func() { sqlExec(`DELETE FROM hsm_audit WHERE seq = ?`, seq) },
			func() {
				sqlExec(`INSERT INTO hsm_audit (seq, at, actor, action, object, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
					seq, at, actor, action, object, details, prev, hash)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper()
			out, err := c.CLI(context.Background(), "hsm", "audit", "verify")
			tc.restore()
			if err == nil || !strings.Contains(out, fmt.Sprintf("first bad entry is #%d:", seq)) {
				t.Fatalf("audit verify after the entry #%d was %s: err %v, output:\n%s", seq, tc.name, err, out)
			}
			// verify unseals here to check the MACs, which appends its
			// own entries: the count grows, the log stays intact.
			if m := intact.FindStringSubmatch(cli(t, c, "hsm", "audit", "verify")); m == nil {
				t.Fatalf("after restoring entry #%d the log should be intact", seq)
			}
		})
	}
}
