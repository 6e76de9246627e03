package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AcquireCRLLease takes, renews or fails to take the lease on building
// issuerID's CRLs for holder, until ttl from now. It reports true when holder
// holds the lease afterwards: there was none, the previous one had expired,
// or holder already held it (then it is renewed). It reports false, with no
// error, while another holder's lease runs.
//
// One statement decides, so two nodes racing for a free or expired lease
// cannot both win. Expiry compares this node's clock with the one that wrote
// expires_at: node clocks must agree to well within ttl.
func (d *DB) AcquireCRLLease(ctx context.Context, issuerID, holder string, ttl time.Duration) (bool, error) {
	if holder == "" || ttl <= 0 {
		return false, errors.New("storage: a CRL lease needs a holder and a positive ttl")
	}
	now := time.Now()
	res, err := d.Exec(ctx, `INSERT INTO crl_leases (issuer_id, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (issuer_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE crl_leases.holder = excluded.holder OR crl_leases.expires_at <= ?`,
		issuerID, holder, Micros(now.Add(ttl)), Micros(now))
	if err != nil {
		return false, fmt.Errorf("taking CRL lease of issuer %s: %w", issuerID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("taking CRL lease of issuer %s: %w", issuerID, err)
	}
	return n == 1, nil
}

// ReleaseCRLLease ends holder's lease on issuerID's CRLs, so another node
// need not wait for it to expire. Releasing a lease holder does not hold
// (never taken, expired and taken over) changes nothing and is no error.
func (d *DB) ReleaseCRLLease(ctx context.Context, issuerID, holder string) error {
	_, err := d.Exec(ctx, `DELETE FROM crl_leases WHERE issuer_id = ? AND holder = ?`, issuerID, holder)
	if err != nil {
		return fmt.Errorf("releasing CRL lease of issuer %s: %w", issuerID, err)
	}
	return nil
}
