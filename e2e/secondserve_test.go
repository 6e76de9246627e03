package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSecondServeRefused: a second ca serve on a running server's data
// directory stops before it unseals the HSM or issues itself a TLS
// certificate (found by a review: it did both, then failed on the port).
func TestSecondServeRefused(t *testing.T) {
	c := StartCA(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.CLI(ctx, "serve")
	if err == nil || !strings.Contains(out, "another ca serve is running") ||
		strings.Contains(out, "hsm unsealed") || strings.Contains(out, "certificate issued") {
		t.Fatalf("a second ca serve on %s: %v\n%s", c.Dir, err, out)
	}
	if !c.ready() {
		t.Fatal("the first server stopped serving")
	}
}
