package main

import (
	"context"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
)

// Without Redis the rate limiter is the process's: a seal and unseal
// rebuilds the app (and newShared), and must not reset the hourly counts.
func TestMemoryLimiterOutlivesTheApp(t *testing.T) {
	n := &node{cfg: config.Default()}
	first, err := newShared(context.Background(), n.cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newShared(context.Background(), n.cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	if first.limiter != second.limiter {
		t.Fatal("each app build gets a new in-memory limiter: an unseal resets every rate limit")
	}
}
