package storage

import (
	"context"
	"fmt"
	"time"
)

// Recovery of ACME work a node left half done. A challenge is "processing"
// while some node validates it, and an order while some node finalizes it;
// each records when it started (processing_since). A node that stops in
// the middle leaves the row there for good unless another node — or the
// same one after a restart — takes it over: StaleACMEChallenges and
// StaleACMEOrders find rows processing since before a cutoff, and the Claim
// and Abandon calls take one over with a compare-and-set on that time, so
// two nodes never both do.

// StaleACMEWork is a challenge or order processing since Since.
type StaleACMEWork struct {
	ID    string
	Since time.Time // zero: released at shutdown, take it at once
}

// StartACMEChallenge moves a pending challenge to processing, started at
// at (zero: released, for any node to take at once). It reports false when
// the challenge was not pending.
func (d *DB) StartACMEChallenge(ctx context.Context, id string, at time.Time) (bool, error) {
	return d.cas(ctx, "starting ACME challenge", `UPDATE acme_challenges SET status = 'processing', processing_since = ?
		WHERE id = ? AND status = 'pending'`, Micros(at), id)
}

// ReleaseACMEChallenge leaves a processing challenge for any node to take
// at once (a validation cut short by shutdown).
func (d *DB) ReleaseACMEChallenge(ctx context.Context, id string) (bool, error) {
	return d.cas(ctx, "releasing ACME challenge", `UPDATE acme_challenges SET processing_since = 0
		WHERE id = ? AND status = 'processing'`, id)
}

// StaleACMEChallenges lists at most limit challenges of endpoint processing
// since before cutoff, oldest first.
func (d *DB) StaleACMEChallenges(ctx context.Context, endpoint string, cutoff time.Time, limit int) ([]StaleACMEWork, error) {
	return d.stale(ctx, "listing stale ACME challenges", `SELECT c.id, c.processing_since FROM acme_challenges c
		JOIN acme_authorizations a ON a.id = c.authz_id
		WHERE c.status = 'processing' AND c.processing_since < ? AND a.endpoint = ?
		ORDER BY c.processing_since LIMIT ?`, Micros(cutoff), endpoint, limit)
}

// ClaimACMEChallenge takes over a stale processing challenge: its start
// time becomes at, if it is still processing since since. Only one node's
// claim succeeds.
func (d *DB) ClaimACMEChallenge(ctx context.Context, id string, since, at time.Time) (bool, error) {
	return d.cas(ctx, "claiming ACME challenge", `UPDATE acme_challenges SET processing_since = ?
		WHERE id = ? AND status = 'processing' AND processing_since = ?`, Micros(at), id, Micros(since))
}

// StartACMEFinalize moves a pending order to processing, started at at. It
// reports false when the order was not pending.
func (d *DB) StartACMEFinalize(ctx context.Context, endpoint, id string, at time.Time) (bool, error) {
	return d.cas(ctx, "starting ACME finalization", `UPDATE acme_orders SET status = 'processing', processing_since = ?
		WHERE id = ? AND endpoint = ? AND status = 'pending'`, Micros(at), id, endpoint)
}

// StaleACMEOrders lists at most limit orders of endpoint processing since
// before cutoff, oldest first.
func (d *DB) StaleACMEOrders(ctx context.Context, endpoint string, cutoff time.Time, limit int) ([]StaleACMEWork, error) {
	return d.stale(ctx, "listing stale ACME orders", `SELECT id, processing_since FROM acme_orders
		WHERE status = 'processing' AND processing_since < ? AND endpoint = ?
		ORDER BY processing_since LIMIT ?`, Micros(cutoff), endpoint, limit)
}

// AbandonACMEOrder makes a stale processing order invalid with problem, if
// it is still processing since since.
func (d *DB) AbandonACMEOrder(ctx context.Context, endpoint, id string, since time.Time, problem []byte) (bool, error) {
	return d.cas(ctx, "abandoning ACME order", `UPDATE acme_orders SET status = 'invalid', error = ?
		WHERE id = ? AND endpoint = ? AND status = 'processing' AND processing_since = ?`,
		string(problem), id, endpoint, Micros(since))
}

// cas runs a conditional UPDATE and reports whether it changed a row.
func (d *DB) cas(ctx context.Context, what, query string, args ...any) (bool, error) {
	res, err := d.Exec(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}

func (d *DB) stale(ctx context.Context, what, query string, args ...any) ([]StaleACMEWork, error) {
	return queryAll(ctx, d, what, query, args, func(r scanner) (StaleACMEWork, error) {
		var w StaleACMEWork
		var since int64
		err := r.Scan(&w.ID, &since)
		w.Since = FromMicros(since)
		return w, err
	})
}
