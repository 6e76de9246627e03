package ocsp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// RevocationSource lists an issuer's revoked certificates whose status
// changed (Revocation.ChangedAt: revoked, or the reason raised to
// keyCompromise) at or after a time (storage.DB).
type RevocationSource interface {
	EachRevoked(ctx context.Context, issuerID string, since time.Time, fn func(core.Revocation) error) error
}

// sweepOverlap is how far each sweep reaches back before the previous
// one began: a change's time comes from the revoking node's clock and is
// committed a moment later. Dropping an answer twice costs one signature.
const sweepOverlap = time.Minute

// Sweep drops the cached answers of every certificate revoked (or whose
// reason was raised) at or after since, for every issuer. It is the durable path behind revocation events:
// an event is at most once, and when the shared cache could not be reached
// at revocation time (Redis down) the revoking node could not drop the
// cached "good" either. It returns the first error after trying them all.
func (r *Responder) Sweep(ctx context.Context, src RevocationSource, since time.Time) error {
	return r.sweep(ctx, src, since, nil, time.Time{})
}

// sweep is Sweep that skips the changes in done (those whose answers a
// previous sweep already dropped: the same serial changed at the same
// time) and records there, with their time, those it drops that changed at
// or after keepFrom (the next sweep's reach: the first sweep covers a
// whole validity, which done need not hold).
func (r *Responder) sweep(ctx context.Context, src RevocationSource, since time.Time, done map[string]time.Time, keepFrom time.Time) error {
	var errs []error
	for id := range r.byID {
		err := src.EachRevoked(ctx, id, since, func(rv core.Revocation) error {
			key := id + "/" + string(rv.Serial)
			if at, ok := done[key]; ok && at.Equal(rv.ChangedAt) {
				return ctx.Err()
			}
			if err := r.Invalidate(ctx, id, rv.Serial); err != nil {
				errs = append(errs, fmt.Errorf("dropping cached answers of %s: %w", rv.Serial, err))
			} else if done != nil && !rv.ChangedAt.Before(keepFrom) {
				done[key] = rv.ChangedAt
			}
			return ctx.Err()
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RunSweeper sweeps every interval until ctx ends. The first sweep covers
// the changes of the last Validity (a cached answer lives no longer);
// each later one starts sweepOverlap before the last sweep that succeeded,
// so a revocation whose answers could not be dropped is tried again until
// they are.
func (r *Responder) RunSweeper(ctx context.Context, src RevocationSource, interval time.Duration) {
	mark := r.now().Add(-r.validity)
	t := time.NewTicker(interval)
	defer t.Stop()
	// done holds the changes of the overlap whose answers were dropped,
	// so a busy CA's last minute is not dropped again every sweep.
	done := map[string]time.Time{}
	for {
		start := r.now()
		if err := r.sweep(ctx, src, mark.Add(-sweepOverlap), done, start.Add(-sweepOverlap)); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("revocation sweep failed; retrying", "since", mark, "err", err)
		} else {
			mark = start
			for k, at := range done {
				if at.Before(mark.Add(-sweepOverlap)) {
					delete(done, k) // the next sweep does not reach it
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
