package e2e

import (
	"context"
	"regexp"
	"testing"

	"golang.org/x/crypto/ocsp"
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
