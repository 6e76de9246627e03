// Package softhsmtest gives tests a fresh SoftHSMv2 token: a token directory
// and configuration of their own (SOFTHSM2_CONF, read by the library at
// C_Initialize), initialised with softhsm2-util. Without Debian's softhsm2
// the test skips, or fails under STRONGROOM_REQUIRE_SERVICES=1.
package softhsmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// Token is an initialised SoftHSM token.
type Token struct {
	Module string // path of libsofthsm2.so
	Label  string
	PIN    string // user PIN
	SOPIN  string
	Conf   string // the SOFTHSM2_CONF file, for child processes
}

// Module returns the path of libsofthsm2.so, or "" if it is not installed.
func Module() string {
	if m := os.Getenv("SOFTHSM2_MODULE"); m != "" {
		return m
	}
	for _, p := range []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// New initialises a token labelled label in a temporary directory and
// points SOFTHSM2_CONF at it for the rest of the test (tb.Setenv: not for
// parallel tests).
func New(tb testing.TB, label string) Token {
	tb.Helper()
	module := Module()
	util, err := exec.LookPath("softhsm2-util")
	if module == "" || err != nil {
		storagetest.ServiceMissing(tb, "SoftHSMv2 (apt-get install softhsm2)", errors.New("libsofthsm2.so or softhsm2-util not found"))
	}
	dir := tb.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	cfg := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	t := Token{Module: module, Label: label, PIN: "user-pin-8431", SOPIN: "so-pin-5520", Conf: conf}
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", t.SOPIN, "--pin", t.PIN).CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return t
}

// Options opens the token as its user.
func (t Token) Options() pkcs11.Options {
	return pkcs11.Options{Module: t.Module, Token: t.Label, PIN: t.PIN}
}
