package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// apacheModules is where Debian's apache2-bin package puts httpd's modules.
const apacheModules = "/usr/lib/apache2/modules"

// apacheConf is a private httpd with mod_md as its ACME client: one managed
// domain of two names solved by tls-alpn-01 on the HTTPS port (acme-tls/1
// in Protocols), one of one name solved by http-01 on the HTTP port, both
// served by SSL virtual hosts on the HTTPS port. MDPortMap tells mod_md
// which local ports stand for 80 and 443, where the CA's validator
// connects. The ACME client runs in httpd's children, as User when httpd
// starts as root: everything it reads or writes is under dir.
const apacheConf = `ServerRoot {{dir}}
ServerName localhost
PidFile {{dir}}/httpd.pid
DefaultRuntimeDir {{dir}}/run
ErrorLog {{dir}}/error.log
LogLevel warn md:info
{{user}}
LoadModule mpm_event_module {{mods}}/mod_mpm_event.so
LoadModule ssl_module {{mods}}/mod_ssl.so
LoadModule md_module {{mods}}/mod_md.so

Listen 127.0.0.1:{{http}}
Listen 127.0.0.1:{{https}} https
MDPortMap 80:{{http}} 443:{{https}}

MDCertificateAuthority {{directory}}
MDCACertificateFile {{dir}}/root.pem
MDCertificateAgreement accepted
MDContactEmail e2e@example.com
MDStoreDir {{dir}}/md
MDMessageCmd {{dir}}/message.sh
MDStapling on

<MDomain {{alpn}}>
  MDCAChallenges tls-alpn-01
</MDomain>
<MDomain {{web}}>
  MDCAChallenges http-01
</MDomain>

Protocols http/1.1 acme-tls/1
<VirtualHost 127.0.0.1:{{https}}>
  ServerName {{alpn0}}
  ServerAlias {{alpn1}}
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{{https}}>
  ServerName {{web}}
  SSLEngine on
</VirtualHost>
`

// messageScript is mod_md's MDMessageCmd: it appends each event
// ("renewed DOMAIN", "ocsp-renewed DOMAIN", …) to a file the test reads.
const messageScript = `#!/bin/sh
echo "$@" >> "$(dirname "$0")/messages/events"
`

// TestApacheModMD: Apache httpd's own ACME client, mod_md, gets a
// certificate for each managed domain from Strongroom in the background
// (tls-alpn-01 and http-01), tells MDMessageCmd, uses the certificates
// after a graceful restart, and staples the CA's OCSP answers.
func TestApacheModMD(t *testing.T) {
	httpd := requireApache(t)
	e := startACMEEnv(t)
	alpn, web := e.names(t, "www", "api"), e.names(t, "web")[0]
	dir := apacheDir(t, e.ca.Root)

	conf := strings.NewReplacer("{{dir}}", dir, "{{mods}}", apacheModules, "{{user}}", apacheUser(),
		"{{http}}", fmt.Sprint(e.httpPort), "{{https}}", fmt.Sprint(e.tlsPort), "{{directory}}", e.directory,
		"{{alpn}}", strings.Join(alpn, " "), "{{alpn0}}", alpn[0], "{{alpn1}}", alpn[1], "{{web}}", web,
	).Replace(apacheConf)
	writeFile(t, filepath.Join(dir, "httpd.conf"), []byte(conf))
	a := startApache(t, httpd, dir)

	// mod_md serves a temporary self-signed certificate until it has one
	// from the CA, and tells MDMessageCmd "renewed" when it has.
	a.waitEvents(t, 60*time.Second, "renewed "+alpn[0], "renewed "+web)
	a.gracefulRestart(t)

	addr := fmt.Sprintf("127.0.0.1:%d", e.tlsPort)
	for _, names := range [][]string{alpn, {web}} {
		st := e.waitHandshake(t, addr, names[0], 20*time.Second)
		leaf := st.PeerCertificates[0]
		e.verifyChain(t, writeChain(t, st.PeerCertificates), names...)
		if s := e.ocspStatus(t, leaf); s != "good" {
			t.Fatalf("OCSP says %s for %v, want good", s, names)
		}
		// mod_md fetches OCSP responses for its certificates in the
		// background (MDStapling) and staples them once it has one.
		for deadline := time.Now().Add(30 * time.Second); len(st.OCSPResponse) == 0 && time.Now().Before(deadline); {
			time.Sleep(500 * time.Millisecond)
			st = e.waitHandshake(t, addr, names[0], 5*time.Second)
		}
		if len(st.OCSPResponse) == 0 {
			t.Fatalf("Apache staples no OCSP response for %v", names)
		}
		r, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf, st.PeerCertificates[1])
		if err != nil || r.Status != ocsp.Good || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatalf("stapled OCSP response for %v: %v, %+v", names, err, r)
		}
	}
}

// requireApache finds Debian's apache2 binary (in /usr/sbin, which a
// non-root PATH often lacks) and mod_md.
func requireApache(t *testing.T) string {
	t.Helper()
	httpd, err := exec.LookPath("apache2")
	if err != nil {
		httpd = "/usr/sbin/apache2"
	}
	for _, p := range []string{httpd, filepath.Join(apacheModules, "mod_md.so")} {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "%s: %v (make deps installs apache2-bin)", p, err)
		}
	}
	return httpd
}

// apacheUser is the User and Group httpd's children run as: as root,
// Debian's www-data (httpd refuses to serve as root); otherwise httpd
// keeps the test's user and ignores the directives.
func apacheUser() string {
	if os.Geteuid() != 0 {
		return ""
	}
	return "User www-data\nGroup www-data"
}

// apacheDir makes httpd's ServerRoot with a copy of the CA's root (which
// mod_md's ACME connections trust), the message script and a directory it
// writes events into. t.TempDir's directories are the test user's alone:
// they are opened to httpd's children (www-data when the test runs as root).
func apacheDir(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	rootPEM, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{filepath.Dir(dir): 0o755, dir: 0o755,
		filepath.Join(dir, "run"): 0o755, filepath.Join(dir, "messages"): 0o777} {
		if err := os.MkdirAll(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "root.pem"), rootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "message.sh"), []byte(messageScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// apache is an httpd running in the foreground, in a process group of its
// own with its children.
type apache struct {
	dir  string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startApache(t *testing.T, httpd, dir string) *apache {
	t.Helper()
	a := &apache{dir: dir, out: &syncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(httpd, "-d", dir, "-f", filepath.Join(dir, "httpd.conf"), "-DFOREGROUND")
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		// SIGTERM stops httpd and its children at once.
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
			<-a.done
		}
		if t.Failed() {
			t.Logf("apache2:\n%s\nerror.log:\n%s", a.out.String(), a.errorLog())
		}
	})
	return a
}

func (a *apache) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "error.log"))
	return string(b)
}

// waitEvents waits for lines MDMessageCmd wrote.
func (a *apache) waitEvents(t *testing.T, limit time.Duration, lines ...string) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(a.dir, "messages", "events"))
		got := strings.Split(string(b), "\n")
		if !slices.ContainsFunc(lines, func(l string) bool { return !slices.Contains(got, l) }) {
			return
		}
		select {
		case <-a.done:
			t.Fatalf("apache2 exited before mod_md said %q: %v", lines, a.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mod_md did not say %q within %s; it said:\n%s", lines, limit, b)
		}
	}
}

// gracefulRestart is `apachectl graceful`: httpd re-reads its
// configuration, mod_md installs the certificates it obtained, and new
// children serve them.
func (a *apache) gracefulRestart(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
}

// waitHandshake connects to addr for name, trusting only the CA's root,
// until a handshake verifies (httpd's old children finish with the old
// certificate) or limit passes.
func (e *acmeEnv) waitHandshake(t *testing.T, addr, name string, limit time.Duration) tls.ConnectionState {
	t.Helper()
	roots := x509.NewCertPool()
	root, err := os.ReadFile(e.ca.Root)
	if err != nil || !roots.AppendCertsFromPEM(root) {
		t.Fatalf("reading the root: %v", err)
	}
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: name, RootCAs: roots})
		if err == nil {
			st := c.ConnectionState()
			c.Close()
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake for %s with a certificate from the CA within %s: %v", name, limit, err)
		}
	}
}

// writeChain writes certificates as a PEM file (for verifyChain).
func writeChain(t *testing.T, certs []*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(t.TempDir(), "chain.pem")
	writeFile(t, path, b)
	return path
}
