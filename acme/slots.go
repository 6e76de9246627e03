package acme

import (
	"context"
	"slices"
	"sync"
)

// Validation slots. An endpoint validates at most validationSlots
// challenges at once (each holds a connection to a client's server for up
// to ValidationTimeout), and one account at most slotsPerAccount of them.
// Challenges that wait for a slot are served in turn by account, not in
// the order they came: an account that posts hundreds of challenges whose
// servers hang (found by a review: 500 of them held another account's
// 2 ms check for 46 s) waits behind its own, while another account's
// challenge takes the next free slot but one per account ahead of it.
const (
	validationSlots = 64
	slotsPerAccount = 8
)

// slots hands out validation slots fairly among accounts.
type slots struct {
	mu         sync.Mutex
	free       int
	perAccount int
	held       map[string]int             // account → slots it holds
	waiting    map[string][]chan struct{} // account → its waiters, first come first
	turn       []string                   // accounts with waiters, next to be served first
}

func newSlots(n, perAccount int) *slots {
	return &slots{free: n, perAccount: perAccount, held: map[string]int{}, waiting: map[string][]chan struct{}{}}
}

// acquire waits for a slot for account, until ctx ends (its error then).
func (s *slots) acquire(ctx context.Context, account string) error {
	s.mu.Lock()
	if s.free > 0 && s.held[account] < s.perAccount && len(s.waiting[account]) == 0 {
		s.take(account)
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if len(s.waiting[account]) == 0 {
		s.turn = append(s.turn, account)
	}
	s.waiting[account] = append(s.waiting[account], ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ch: // granted as ctx ended: give it back
			s.giveBack(account)
		default:
			s.drop(account, ch)
		}
		return ctx.Err()
	}
}

// release gives back a slot account held.
func (s *slots) release(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.giveBack(account)
}

func (s *slots) take(account string) {
	s.free--
	s.held[account]++
}

func (s *slots) giveBack(account string) {
	s.free++
	if s.held[account]--; s.held[account] <= 0 {
		delete(s.held, account)
	}
	s.dispatch()
}

// dispatch grants free slots to waiters, one account after another in
// turn, skipping accounts at their limit.
func (s *slots) dispatch() {
	for s.free > 0 {
		i := slices.IndexFunc(s.turn, func(a string) bool { return s.held[a] < s.perAccount })
		if i < 0 {
			return
		}
		a := s.turn[i]
		ch := s.waiting[a][0]
		s.waiting[a] = s.waiting[a][1:]
		s.turn = slices.Delete(s.turn, i, i+1)
		if len(s.waiting[a]) > 0 {
			s.turn = append(s.turn, a) // to the back of the line
		} else {
			delete(s.waiting, a)
		}
		s.take(a)
		close(ch)
	}
}

// drop removes ch, a waiter of account's that gave up.
func (s *slots) drop(account string, ch chan struct{}) {
	w := s.waiting[account]
	if i := slices.Index(w, ch); i >= 0 {
		w = slices.Delete(w, i, i+1)
	}
	if len(w) > 0 {
		s.waiting[account] = w
		return
	}
	delete(s.waiting, account)
	if i := slices.Index(s.turn, account); i >= 0 {
		s.turn = slices.Delete(s.turn, i, i+1)
	}
}
