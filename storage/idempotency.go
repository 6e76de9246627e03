package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// RenewalKey is the idempotency key of a certificate's renewal, claimed
// by the principal "renew:<serial>" (ra.RenewalPrincipal).
const RenewalKey = "renewal"

// IdempotencyRecord is what one principal's Idempotency-Key names: the
// fingerprint of the request first sent with it and, once issued, the
// certificate's serial ("" while that request runs).
type IdempotencyRecord struct {
	RequestHash []byte
	Serial      core.Serial
	CreatedAt   time.Time
}

// ClaimIdempotencyKey records that principal's request with fingerprint
// hash runs now under key. It returns nil when the claim is the caller's: a
// new key, or one whose row no longer counts and is taken over — a claim
// that never finished (no serial) from before abandonedBefore, or any row
// from before expiredBefore whose keepUntil has passed. Otherwise it
// returns the record that stands, and the caller must not issue. keepUntil
// (zero: none) keeps the claim, once finished, past expiredBefore.
func (d *DB) ClaimIdempotencyKey(ctx context.Context, principal, key string, hash []byte, at, abandonedBefore, expiredBefore, keepUntil time.Time) (*IdempotencyRecord, error) {
	// A row pruned between the claim and the read is claimed again: twice
	// at most, a third miss is an error, not a loop.
	for range 3 {
		if ok, err := d.cas(ctx, "claiming idempotency key", `INSERT INTO api_idempotency (principal, idem_key, request_hash, created_at, keep_until)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (principal, idem_key) DO NOTHING`, principal, key, hash, Micros(at), Micros(keepUntil)); err != nil || ok {
			return nil, err
		}
		if ok, err := d.cas(ctx, "claiming idempotency key", `UPDATE api_idempotency SET request_hash = ?, serial = '', created_at = ?, keep_until = ?
			WHERE principal = ? AND idem_key = ? AND ((serial = '' AND created_at < ?) OR (created_at < ? AND keep_until < ?))`,
			hash, Micros(at), Micros(keepUntil), principal, key, Micros(abandonedBefore), Micros(expiredBefore), Micros(at)); err != nil || ok {
			return nil, err
		}
		var r IdempotencyRecord
		var serial string
		var created int64
		err := d.QueryRow(ctx, `SELECT request_hash, serial, created_at FROM api_idempotency WHERE principal = ? AND idem_key = ?`,
			principal, key).Scan(&r.RequestHash, &serial, &created)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading idempotency key: %w", err)
		}
		r.Serial, r.CreatedAt = core.Serial(serial), FromMicros(created)
		return &r, nil
	}
	return nil, errors.New("claiming idempotency key: the row keeps disappearing")
}

// FinishIdempotencyKey records the certificate issued under a claim.
func (d *DB) FinishIdempotencyKey(ctx context.Context, principal, key string, serial core.Serial) error {
	if _, err := d.Exec(ctx, `UPDATE api_idempotency SET serial = ? WHERE principal = ? AND idem_key = ? AND serial = ''`,
		string(serial), principal, key); err != nil {
		return fmt.Errorf("recording idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey drops an unfinished claim (its request failed), so
// the key may be used again.
func (d *DB) ReleaseIdempotencyKey(ctx context.Context, principal, key string) error {
	if _, err := d.Exec(ctx, `DELETE FROM api_idempotency WHERE principal = ? AND idem_key = ? AND serial = ''`,
		principal, key); err != nil {
		return fmt.Errorf("releasing idempotency key: %w", err)
	}
	return nil
}

// PruneIdempotencyKeys deletes the rows created before before, but for
// those kept until after now. First it gives the renewal claims that a
// node on the previous release wrote (keep_until 0) their certificate's
// end, as migration 00130 did for older ones: the claim of a renewal is
// kept while the certificate can be presented.
func (d *DB) PruneIdempotencyKeys(ctx context.Context, before, now time.Time) (int64, error) {
	if _, err := d.Exec(ctx, `UPDATE api_idempotency SET keep_until = COALESCE(
		(SELECT c.not_after FROM certificates c WHERE c.serial = substr(api_idempotency.principal, 7)), 1)
		WHERE idem_key = ? AND keep_until = 0 AND principal LIKE 'renew:%'`, RenewalKey); err != nil {
		return 0, fmt.Errorf("keeping renewal claims: %w", err)
	}
	res, err := d.Exec(ctx, `DELETE FROM api_idempotency WHERE created_at < ? AND keep_until < ?`, Micros(before), Micros(now))
	if err != nil {
		return 0, fmt.Errorf("pruning idempotency keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
