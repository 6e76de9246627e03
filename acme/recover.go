package acme

import (
	"context"
	"net/http"
	"time"
)

// Taking over what a stopped node left processing. A challenge is
// processing while a node validates it and an order while a node finalizes
// it. A node that crashes, or shuts down mid-validation, leaves them so;
// before this, certbot and lego then polled until they gave up. Every node
// sweeps each endpoint at start and every Options.RecoverEvery:
//
//   - a challenge processing for longer than a validation can take
//     (ValidationTimeout plus recoverGrace), or released by a shutdown, is
//     claimed (compare-and-set on its start time: one node wins) and
//     validated again; the result settles it and its authorization as
//     usual, so a client that is still polling just sees it finish;
//   - an order processing for longer than finalizeStale is made invalid
//     with a serverInternal problem. Its CSR is not kept, and a certificate
//     may already have been issued (and recorded) for it, so it is not
//     finalized again: the client creates a new order.
const (
	recoverGrace  = 30 * time.Second
	finalizeStale = 5 * time.Minute
	recoverBatch  = 100
)

func (s *Server) recoverLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.RecoverEvery)
	defer t.Stop()
	for {
		if _, err := s.Recover(s.bg); err != nil && s.bg.Err() == nil {
			s.log.ErrorContext(s.bg, "recovering ACME work left processing", "err", err)
		}
		select {
		case <-t.C:
		case <-s.bg.Done():
			return
		}
	}
}

// Recover runs one sweep and returns how many challenges it started
// validating again and orders it made invalid. The validations run in the
// background (Close waits for them).
func (s *Server) Recover(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	stale, err := s.o.Store.StaleACMEChallenges(ctx, s.o.Name, now.Add(-(s.o.ValidationTimeout + recoverGrace)), recoverBatch)
	if err != nil {
		return n, err
	}
	for _, w := range stale {
		ok, err := s.revalidate(ctx, w.ID, w.Since, now)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	orders, err := s.o.Store.StaleACMEOrders(ctx, s.o.Name, now.Add(-finalizeStale), recoverBatch)
	if err != nil {
		return n, err
	}
	p := problemJSON(prob("serverInternal", http.StatusInternalServerError,
		"finalization was interrupted (the server stopped); create a new order"))
	for _, w := range orders {
		ok, err := s.o.Store.AbandonACMEOrder(ctx, s.o.Name, w.ID, w.Since, p)
		if err != nil {
			return n, err
		}
		if ok {
			n++
			s.log.WarnContext(ctx, "acme order left processing made invalid", "order", w.ID, "processing_since", w.Since)
		}
	}
	return n, nil
}

// revalidate claims the stale processing challenge id and validates it
// again in the background; false if another node claimed it first.
func (s *Server) revalidate(ctx context.Context, id string, since, now time.Time) (bool, error) {
	ok, err := s.o.Store.ClaimACMEChallenge(ctx, id, since, now)
	if err != nil || !ok {
		return false, err
	}
	a, err := s.o.Store.ACMEAuthzByChallenge(ctx, s.o.Name, id)
	if err != nil {
		return false, err
	}
	acct, err := s.o.Store.ACMEAccount(ctx, s.o.Name, a.AccountID)
	if err != nil {
		return false, err
	}
	for _, c := range a.Challenges {
		if c.ID == id {
			s.log.InfoContext(ctx, "acme challenge left processing validated again", "authz", a.ID, "challenge", c.Type,
				"processing_since", since)
			s.startValidation(a, c, acct.Thumbprint)
			return true, nil
		}
	}
	return false, nil
}
