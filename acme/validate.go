package acme

import (
	"context"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// Challenge validation (RFC 8555 §7.5.1, §8). A challenge POST starts the
// Validator and waits up to ValidationWait for it: most http-01 and
// tls-alpn-01 checks take milliseconds, and answering with the result
// spares the client a Retry-After sleep (lego stops polling when the
// answer is already valid). The result is then recorded in one
// transaction, challenge and authorization together. A validation still
// running when the wait ends is marked processing, answered with
// Retry-After, and recorded by its goroutine when it finishes. Either way
// the challenge moves out of pending exactly once: every write is a
// compare-and-set on the status.

// verdict is what one validation found.
type verdict struct {
	err     error // nil: the challenge is satisfied
	aborted bool  // the server shut down before the validation finished
}

// validation hands a verdict to the request that started it, or — once
// handoff is closed, after the request marked the challenge processing —
// leaves it to the goroutine to record.
type validation struct {
	result  chan verdict // unbuffered
	handoff chan struct{}
}

// runChallenge validates c, a pending challenge of the pending
// authorization a, and updates c to what is stored when it answers.
func (s *Server) runChallenge(ctx context.Context, a *storage.ACMEAuthz, c *storage.ACMEChallenge, thumbprint string) error {
	v := s.startValidation(a, *c, thumbprint)
	// The result is recorded even if the client hangs up meanwhile.
	wctx := context.WithoutCancel(ctx)
	if s.o.ValidationWait > 0 {
		t := time.NewTimer(s.o.ValidationWait)
		defer t.Stop()
		select {
		case res := <-v.result:
			if res.aborted {
				// Shutting down: leave it processing and released, for
				// any node's recovery to validate at once (the client has
				// asked; it must not stay pending).
				if _, err := s.o.Store.StartACMEChallenge(wctx, c.ID, time.Time{}); err != nil {
					return err
				}
				return s.reloadChallenge(wctx, c)
			}
			if s.record(wctx, a, c, "pending", res.err) {
				return nil
			}
			return s.reloadChallenge(wctx, c) // another request settled it first
		case <-t.C:
		case <-ctx.Done():
		}
	}
	defer close(v.handoff)
	ok, err := s.o.Store.StartACMEChallenge(wctx, c.ID, s.now())
	if err != nil {
		return err
	}
	if !ok {
		return s.reloadChallenge(wctx, c)
	}
	c.Status = "processing"
	return nil
}

func (s *Server) reloadChallenge(ctx context.Context, c *storage.ACMEChallenge) error {
	a, err := s.o.Store.ACMEAuthzByChallenge(ctx, s.o.Name, c.ID)
	if err != nil {
		return err
	}
	for _, cur := range a.Challenges {
		if cur.ID == c.ID {
			*c = cur
		}
	}
	return nil
}

// startValidation runs the Validator in the background. The key
// authorization is token "." account key thumbprint (§8.1).
func (s *Server) startValidation(a *storage.ACMEAuthz, c storage.ACMEChallenge, thumbprint string) *validation {
	keyAuth := c.Token + "." + thumbprint
	id := Identifier(a.Identifier)
	v := &validation{result: make(chan verdict), handoff: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var res verdict
		select {
		case s.validate <- struct{}{}:
			ctx, cancel := context.WithTimeout(s.bg, s.o.ValidationTimeout)
			res.err = s.o.Validator.Validate(ctx, c.Type, id, c.Token, keyAuth)
			cancel()
			<-s.validate
		case <-s.bg.Done():
		}
		res.aborted = s.bg.Err() != nil
		select {
		case v.result <- res:
			return
		case <-v.handoff:
		}
		// Record with a context of its own: the request that started the
		// validation is gone, and shutdown must still leave a usable state.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if res.aborted { // shutting down: another node, or this one restarted, takes it over
			if _, err := s.o.Store.ReleaseACMEChallenge(ctx, c.ID); err != nil {
				s.log.ErrorContext(ctx, "releasing challenge at shutdown", "authz", a.ID, "err", err)
			}
			return
		}
		s.record(ctx, a, &c, "processing", res.err)
	}()
	return v
}

// record stores the verdict for c, moving it from status from, and
// reports whether it did; c then holds what was stored.
func (s *Server) record(ctx context.Context, a *storage.ACMEAuthz, c *storage.ACMEChallenge, from string, verr error) bool {
	log := s.log.With("account", a.AccountID, "authz", a.ID, "challenge", c.Type)
	to, validated, perr := "valid", s.now(), []byte(nil)
	if verr != nil {
		p := validationProblem(verr)
		to, validated, perr = "invalid", time.Time{}, problemJSON(p)
		log.InfoContext(ctx, "acme challenge failed", "problem", p.Type, "detail", p.Detail)
	} else {
		log.InfoContext(ctx, "acme challenge valid")
	}
	ok, err := s.o.Store.SettleACMEChallenge(ctx, s.o.Name, a.ID, c.ID, from, to, validated, perr)
	if err != nil {
		log.ErrorContext(ctx, "recording challenge result", "err", err)
		return false
	}
	if ok {
		c.Status, c.Validated, c.Error = to, validated, perr
	}
	return ok
}
