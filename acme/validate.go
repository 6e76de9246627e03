package acme

import (
	"context"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// Challenge validation (RFC 8555 §7.5.1, §8). Once the client responds the
// challenge is processing and is validated once: a challenge POST first
// moves it from pending to processing (compare-and-set on the status, so of
// concurrent POSTs exactly one wins; the others, and every later POST,
// answer its current state) and only then starts the Validator. The
// request waits up to ValidationWait for the result: most http-01 and
// tls-alpn-01 checks take milliseconds, and answering with the result
// spares the client a Retry-After sleep (lego stops polling when the
// answer is already valid). A validation still running when the wait ends
// is answered processing with Retry-After. Either way the validation's
// goroutine records the result, challenge and authorization together in
// one transaction, moving the challenge out of processing.

// runChallenge moves c, a pending challenge of the pending authorization
// a, to processing and validates it, or, if another request did so first,
// reads its current state; c is then what the client is answered.
func (s *Server) runChallenge(ctx context.Context, a *storage.ACMEAuthz, c *storage.ACMEChallenge, thumbprint string) error {
	ok, err := s.o.Store.StartACMEChallenge(ctx, c.ID, s.now())
	if err != nil {
		return err
	}
	if !ok {
		return s.reloadChallenge(ctx, c)
	}
	c.Status = "processing"
	settled := s.startValidation(a, *c, thumbprint)
	if s.o.ValidationWait <= 0 {
		return nil
	}
	t := time.NewTimer(s.o.ValidationWait)
	defer t.Stop()
	select {
	case *c = <-settled:
	case <-t.C:
	case <-ctx.Done():
	}
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

// startValidation validates c, which this node has just moved to (or
// claimed in) processing, in the background, and records the result. The
// key authorization is token "." account key thumbprint (§8.1). The
// returned channel (buffered: nobody need read it) gets c as recorded.
func (s *Server) startValidation(a *storage.ACMEAuthz, c storage.ACMEChallenge, thumbprint string) <-chan storage.ACMEChallenge {
	keyAuth := c.Token + "." + thumbprint
	id := Identifier(a.Identifier)
	settled := make(chan storage.ACMEChallenge, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var verr error
		if s.validate.acquire(s.bg, a.AccountID) == nil {
			ctx, cancel := context.WithTimeout(s.bg, s.o.ValidationTimeout)
			verr = s.o.Validator.Validate(ctx, c.Type, id, c.Token, keyAuth)
			cancel()
			s.validate.release(a.AccountID)
		}
		// Record with a context of its own: the request that started the
		// validation may be gone, and shutdown must still leave a usable
		// state.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if s.bg.Err() != nil { // shutting down: another node, or this one restarted, takes it over
			if _, err := s.o.Store.ReleaseACMEChallenge(ctx, c.ID); err != nil {
				s.log.ErrorContext(ctx, "releasing challenge at shutdown", "authz", a.ID, "err", err)
			}
			return
		}
		s.record(ctx, a, &c, verr)
		settled <- c
	}()
	return settled
}

// record stores the verdict for c, moving it from processing; c then
// holds what was stored. A challenge no longer processing (another node
// took a slow validation over and settled it first) is left as it is.
func (s *Server) record(ctx context.Context, a *storage.ACMEAuthz, c *storage.ACMEChallenge, verr error) {
	log := s.log.With("account", a.AccountID, "authz", a.ID, "challenge", c.Type)
	to, validated, perr := "valid", s.now(), []byte(nil)
	if verr != nil {
		p := validationProblem(verr)
		to, validated, perr = "invalid", time.Time{}, problemJSON(p)
		log.InfoContext(ctx, "acme challenge failed", "problem", p.Type, "detail", p.Detail)
	} else {
		log.InfoContext(ctx, "acme challenge valid")
	}
	ok, err := s.o.Store.SettleACMEChallenge(ctx, s.o.Name, a.ID, c.ID, "processing", to, validated, perr)
	if err != nil {
		log.ErrorContext(ctx, "recording challenge result", "err", err)
		return
	}
	if ok {
		c.Status, c.Validated, c.Error = to, validated, perr
	}
}
