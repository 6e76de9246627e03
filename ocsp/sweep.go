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
// at revocation time (Redis down or hung) the revoking node could not drop
// the cached "good" from it either. This node stops serving those at once
// (revoked.go); the error says whether the revocations could be read and
// the shared cache's copies dropped.
func (r *Responder) Sweep(ctx context.Context, src RevocationSource, since time.Time) error {
	readErr, dropErr := r.sweep(ctx, src, since, nil, time.Time{})
	return errors.Join(readErr, dropErr)
}

// sweep is Sweep that skips the changes in done (those a previous sweep
// already handled: the same serial changed at the same time) and records
// there, with their time, those it handles that changed at or after
// keepFrom (the next sweep's reach: the first sweep covers a whole
// validity, which done need not hold). It returns the error reading the
// revocations apart from the shared cache's: the deletions that fail are
// retried by RunSweeper, not by sweeping again.
func (r *Responder) sweep(ctx context.Context, src RevocationSource, since time.Time, done map[string]time.Time, keepFrom time.Time) (readErr, dropErr error) {
	var errs []error
	var keys []string
	for id := range r.byID {
		err := src.EachRevoked(ctx, id, since, func(rv core.Revocation) error {
			key := id + "/" + string(rv.Serial)
			if at, ok := done[key]; ok && at.Equal(rv.ChangedAt) {
				return ctx.Err()
			}
			keys = append(keys, r.forget(id, rv.Serial)...)
			if done != nil && !rv.ChangedAt.Before(keepFrom) {
				done[key] = rv.ChangedAt
			}
			return ctx.Err()
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(keys) > 0 {
		if err := r.dropShared(ctx, keys); err != nil {
			dropErr = fmt.Errorf("dropping cached answers of %d revoked certificates: %w", len(keys)/len(hashOIDs), err)
		}
	}
	return errors.Join(errs...), dropErr
}

// RunSweeper sweeps every interval until ctx ends. The first sweep covers
// the changes of the last Validity (a cached answer lives no longer);
// each later one starts sweepOverlap before the last sweep that succeeded,
// so a revocation that could not be read is tried again. Each tick also
// retries the shared cache deletions that failed (revoked.go) and forgets
// the revocations past their time.
func (r *Responder) RunSweeper(ctx context.Context, src RevocationSource, interval time.Duration) {
	mark := r.now().Add(-r.validity)
	t := time.NewTicker(interval)
	defer t.Stop()
	// done holds the changes of the overlap already handled, so a busy
	// CA's last minute is not dropped again every sweep.
	done := map[string]time.Time{}
	for {
		start := r.now()
		r.retryDrops(ctx)
		r.revoked.prune(start)
		if err, _ := r.sweep(ctx, src, mark.Add(-sweepOverlap), done, start.Add(-sweepOverlap)); err != nil {
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
