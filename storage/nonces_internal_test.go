package storage

import (
	"context"
	"testing"
	"time"
)

// TestMemoryNoncesQueueBounded: a nonce held unredeemed at the front of
// the queue must not let redeemed nonces pile up behind it.
func TestMemoryNoncesQueueBounded(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	m := NewMemoryNonces(10, time.Hour, func() time.Time { return now })
	held, _ := m.Issue(ctx)
	for range 1000 {
		n, err := m.Issue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := m.Redeem(ctx, n); !ok {
			t.Fatal("fresh nonce not redeemable")
		}
	}
	if len(m.queue) > 2*m.max {
		t.Fatalf("queue holds %d entries with %d live, bound is %d", len(m.queue), m.Len(), m.max)
	}
	if ok, _ := m.Redeem(ctx, held); !ok {
		t.Fatal("the held nonce was lost by compaction")
	}
}
