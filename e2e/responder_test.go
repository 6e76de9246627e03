package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"regexp"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/core"
)

// TestResponderSurvivesRestart: a restart answers OCSP with the same
// delegated responder certificate, and the responder key gets no new
// version (before, every start certified and rotated again).
func TestResponderSurvivesRestart(t *testing.T) {
	c := StartCA(t, Options{})
	responderOf := func(name string) (*ocsp.Response, string) {
		t.Helper()
		chain := issueChain(t, c, goCSR(t, name))
		req, _ := ocsp.CreateRequest(chain[0], chain[1], nil)
		r := ocspGet(t, c, req, false, chain[0], chain[1])
		if r.Certificate == nil {
			t.Fatal("the answer carries no responder certificate")
		}
		out, err := c.CLI(context.Background(), "hsm", "keys", "list")
		if err != nil {
			t.Fatalf("ca hsm keys list: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`(?m)^\S+\s+ocsp-responder-intermediate\s+\S+\s+(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no responder key listed:\n%s", out)
		}
		return r, m[1]
	}
	before, v1 := responderOf("before.localhost")
	c.Restart()
	after, v2 := responderOf("after.localhost")
	if !after.Certificate.Equal(before.Certificate) {
		t.Fatalf("the restart certified a new responder (serial %x, before %x)", after.Certificate.SerialNumber, before.Certificate.SerialNumber)
	}
	if v1 != v2 {
		t.Fatalf("the responder key went from version %s to %s across a restart", v1, v2)
	}
}

// TestRevokedResponderReplaced: a delegated responder certificate carries
// id-pkix-ocsp-nocheck, so revoking it (the intermediate's, from the
// pipeline, and the root's, signed directly and recorded too) must make
// the running responder certify a new key at once: here through the
// sweeper, as `ca cert revoke` is another process on a node without Redis.
func TestRevokedResponderReplaced(t *testing.T) {
	c := StartCA(t, Options{})
	ctx := context.Background()
	chain := issueChain(t, c, goCSR(t, "leaf.localhost"))
	root := parsePEMCerts(t, readFile(t, c.Root))[0]
	for _, tc := range []struct {
		name         string
		leaf, issuer *x509.Certificate
	}{{"intermediate", chain[0], chain[1]}, {"root", chain[1], root}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := ocsp.CreateRequest(tc.leaf, tc.issuer, nil)
			old := ocspGet(t, c, req, false, tc.leaf, tc.issuer).Certificate
			if old == nil {
				t.Fatal("the answer carries no responder certificate")
			}
			serial := string(core.SerialFromBig(old.SerialNumber))
			c.MustCLI(t, ctx, "cert", "show", serial)
			c.MustCLI(t, ctx, "cert", "revoke", serial, "--reason", "keyCompromise")
			deadline := time.Now().Add(30 * time.Second)
			for {
				cur := ocspGet(t, c, req, false, tc.leaf, tc.issuer).Certificate
				if !cur.Equal(old) {
					if cur.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey) {
						t.Fatal("the revoked responder key was certified again")
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still signing with the revoked responder certificate %s", serial)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
