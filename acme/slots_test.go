package acme

import (
	"context"
	"testing"
	"time"
)

// granted reports whether ch closed (its waiter was given a slot).
func granted(ch <-chan error) bool {
	select {
	case err := <-ch:
		return err == nil
	case <-time.After(200 * time.Millisecond):
		return false
	}
}

func wait(s *slots, ctx context.Context, account string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.acquire(ctx, account) }()
	time.Sleep(20 * time.Millisecond) // in line before the next one
	return ch
}

// TestSlotsServeAccountsInTurn: a freed slot goes to the next account in
// turn, not to the account with the longest queue, and never beyond an
// account's own limit.
func TestSlotsServeAccountsInTurn(t *testing.T) {
	ctx := context.Background()
	s := newSlots(2, 1)
	if s.acquire(ctx, "a") != nil || s.acquire(ctx, "x") != nil {
		t.Fatal("free slots not given")
	}
	a1, a2, a3 := wait(s, ctx, "a"), wait(s, ctx, "a"), wait(s, ctx, "a")
	b1 := wait(s, ctx, "b")
	// x's slot frees: a is at its limit of one, so b takes it although a
	// queued first.
	s.release("x")
	if !granted(b1) || granted(a1) {
		t.Fatal("the freed slot did not go to b past a's queue")
	}
	s.release("a") // a's own slot: its next waiter
	if !granted(a1) || granted(a2) {
		t.Fatal("a's freed slot did not go to a's first waiter")
	}
	s.release("b")
	if granted(a2) {
		t.Fatal("a holds two slots, over its limit of one")
	}
	s.release("a")
	if !granted(a2) || granted(a3) {
		t.Fatal("a's second waiter not served in order")
	}
	s.release("a")
	if !granted(a3) {
		t.Fatal("a's third waiter not served")
	}
	s.release("a")
	if s.free != 2 || len(s.held) != 0 || len(s.waiting) != 0 || len(s.turn) != 0 {
		t.Fatalf("after all released: free %d held %v waiting %v turn %v", s.free, s.held, s.waiting, s.turn)
	}
}

// TestSlotsRoundRobin: with one slot, accounts waiting take it in turn.
func TestSlotsRoundRobin(t *testing.T) {
	ctx := context.Background()
	s := newSlots(1, 1)
	s.acquire(ctx, "x")
	a1, a2 := wait(s, ctx, "a"), wait(s, ctx, "a")
	b1 := wait(s, ctx, "b")
	s.release("x")
	if !granted(a1) {
		t.Fatal("a, first in line, not served")
	}
	s.release("a")
	if !granted(b1) || granted(a2) {
		t.Fatal("a served twice before b once")
	}
	s.release("b")
	if !granted(a2) {
		t.Fatal("a's second not served")
	}
}

// TestSlotsWaiterGivesUp: a waiter whose context ends leaves the line and
// takes no slot.
func TestSlotsWaiterGivesUp(t *testing.T) {
	s := newSlots(1, 1)
	s.acquire(context.Background(), "x")
	ctx, cancel := context.WithCancel(context.Background())
	gone := wait(s, ctx, "a")
	cancel()
	if err := <-gone; err == nil {
		t.Fatal("acquire with an ended context succeeded")
	}
	s.release("x")
	if s.free != 1 || len(s.waiting) != 0 || len(s.turn) != 0 {
		t.Fatalf("a waiter that gave up was served: free %d waiting %v turn %v", s.free, s.waiting, s.turn)
	}
}
