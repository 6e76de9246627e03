package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// CRL is a signed certificate revocation list as stored.
type CRL struct {
	IssuerID   string
	Delta      bool
	Number     int64
	BaseNumber int64 // for a delta CRL, the complete CRL it builds on
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

func crlKind(delta bool) string {
	if delta {
		return "delta"
	}
	return "full"
}

// NextCRLNumber takes the next number of issuerID's CRL sequence: the
// larger of the last number taken plus one and atLeast (and at least 1).
// Numbers are never handed out twice, even to concurrent nodes; a number
// taken for a CRL that is then not saved is simply skipped.
//
// atLeast is how the caller keeps numbers increasing across a restore of an
// older database, whose last number is lower than ones already published
// (RFC 5280 §5.2.3): crl passes a number derived from the CRL's thisUpdate.
// The comparison is made in the one statement, so nodes whose clocks differ
// still get increasing numbers.
func (d *DB) NextCRLNumber(ctx context.Context, issuerID string, atLeast int64) (int64, error) {
	var n int64
	err := d.QueryRow(ctx, `INSERT INTO crl_numbers (issuer_id, last_number) VALUES (?, ?)
		ON CONFLICT (issuer_id) DO UPDATE SET last_number = CASE
			WHEN crl_numbers.last_number + 1 > excluded.last_number THEN crl_numbers.last_number + 1
			ELSE excluded.last_number END
		RETURNING last_number`, issuerID, max(atLeast, 1)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("taking CRL number for issuer %s: %w", issuerID, err)
	}
	return n, nil
}

// SaveCRL stores c and deletes all but the two newest CRLs of its issuer and
// kind (the current one and the one before it).
func (d *DB) SaveCRL(ctx context.Context, c CRL) error {
	return d.InTx(ctx, func(tx *Tx) error {
		kind := crlKind(c.Delta)
		_, err := tx.Exec(ctx, `INSERT INTO crls (issuer_id, kind, number, base_number, this_update, next_update, der, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.IssuerID, kind, c.Number, c.BaseNumber,
			Micros(c.ThisUpdate), Micros(c.NextUpdate), c.DER, Micros(time.Now()))
		if err != nil {
			return fmt.Errorf("saving %s CRL %d of issuer %s: %w", kind, c.Number, c.IssuerID, err)
		}
		_, err = tx.Exec(ctx, `DELETE FROM crls WHERE issuer_id = ? AND kind = ? AND number < (
			SELECT MIN(number) FROM (SELECT number FROM crls WHERE issuer_id = ? AND kind = ?
			ORDER BY number DESC LIMIT 2) AS newest)`, c.IssuerID, kind, c.IssuerID, kind)
		if err != nil {
			return fmt.Errorf("pruning old CRLs of issuer %s: %w", c.IssuerID, err)
		}
		return nil
	})
}

// LatestCRLNumber returns the number of the newest stored CRL of the kind,
// or core.ErrNotFound. It is cheap: nodes poll it to notice a CRL another
// node built.
func (d *DB) LatestCRLNumber(ctx context.Context, issuerID string, delta bool) (int64, error) {
	var n *int64
	err := d.QueryRow(ctx, `SELECT MAX(number) FROM crls WHERE issuer_id = ? AND kind = ?`,
		issuerID, crlKind(delta)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reading CRL number of issuer %s: %w", issuerID, err)
	}
	if n == nil {
		return 0, core.ErrNotFound
	}
	return *n, nil
}

// LatestCRL returns the newest stored CRL of the kind, or core.ErrNotFound.
func (d *DB) LatestCRL(ctx context.Context, issuerID string, delta bool) (CRL, error) {
	c := CRL{IssuerID: issuerID, Delta: delta}
	var this, next int64
	err := d.QueryRow(ctx, `SELECT number, base_number, this_update, next_update, der FROM crls
		WHERE issuer_id = ? AND kind = ? ORDER BY number DESC LIMIT 1`, issuerID, crlKind(delta)).
		Scan(&c.Number, &c.BaseNumber, &this, &next, &c.DER)
	if err != nil {
		return CRL{}, notFound(err, "reading CRL of issuer "+issuerID)
	}
	c.ThisUpdate, c.NextUpdate = FromMicros(this), FromMicros(next)
	return c, nil
}

// revokedRows is the WHERE of the partial indexes of revoked certificates
// (migration 00190), written as a literal: PostgreSQL uses a partial index
// for a bound status only in a plan made for that value, not in the
// generic plan of a prepared statement.
const revokedRows = "status = '" + string(core.StatusRevoked) + "'"

// EachRevoked calls fn for every certificate of issuerID whose status last
// changed at or after since (all revoked ones for the zero time), in that
// order, streaming rows from the database. It returns the first error fn
// returns.
//
// The last change is updated_at, not revoked_at: a reason raised to
// keyCompromise keeps its revocation date, and a delta CRL must still
// carry it (RFC 5280 §5.2.4), as the OCSP sweep must drop its answers.
// It reads the partial index certificates_revoked_updated (issuer_id,
// updated_at) of the revoked rows.
func (d *DB) EachRevoked(ctx context.Context, issuerID string, since time.Time, fn func(core.Revocation) error) error {
	rows, err := d.Query(ctx, `SELECT serial, revoked_at, revocation_reason, invalidity_date, updated_at FROM certificates
		WHERE issuer_id = ? AND `+revokedRows+` AND updated_at >= ? ORDER BY updated_at`,
		issuerID, Micros(since))
	if err != nil {
		return fmt.Errorf("listing revoked certificates of issuer %s: %w", issuerID, err)
	}
	defer rows.Close()
	var (
		r                core.Revocation
		serial           string
		at, inv, changed int64
		reason           int
	)
	for rows.Next() {
		if err := rows.Scan(&serial, &at, &reason, &inv, &changed); err != nil {
			return fmt.Errorf("reading revoked certificate: %w", err)
		}
		r.Serial, r.RevokedAt, r.Reason = core.Serial(serial), FromMicros(at), core.RevocationReason(reason)
		r.InvalidityDate, r.ChangedAt = FromMicros(inv), FromMicros(changed)
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing revoked certificates of issuer %s: %w", issuerID, err)
	}
	return nil
}

// LatestRevocation returns when the status of a revoked certificate of
// issuerID last changed (zero if none was revoked): a revocation, or a
// reason raised to keyCompromise (see EachRevoked).
func (d *DB) LatestRevocation(ctx context.Context, issuerID string) (time.Time, error) {
	var at int64
	err := d.QueryRow(ctx, `SELECT COALESCE(MAX(updated_at), 0) FROM certificates WHERE issuer_id = ? AND `+revokedRows,
		issuerID).Scan(&at)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the last revocation of issuer %s: %w", issuerID, err)
	}
	return FromMicros(at), nil
}

// CertStatus returns what OCSP needs to know of a certificate of issuerID:
// Serial, IssuerID, Status, NotAfter, RevokedAt and RevocationReason (other
// fields are left empty). A serial that does not exist, or that belongs to
// another issuer, is core.ErrNotFound.
func (d *DB) CertStatus(ctx context.Context, issuerID string, serial core.Serial) (core.Certificate, error) {
	c := core.Certificate{Serial: serial, IssuerID: issuerID}
	var status string
	var notAfter, revokedAt int64
	var reason int
	err := d.QueryRow(ctx, `SELECT status, not_after, revoked_at, revocation_reason FROM certificates
		WHERE serial = ? AND issuer_id = ?`, string(serial), issuerID).Scan(&status, &notAfter, &revokedAt, &reason)
	if err != nil {
		return core.Certificate{}, notFound(err, "reading status of certificate "+string(serial))
	}
	c.Status, c.NotAfter = core.CertStatus(status), FromMicros(notAfter)
	c.RevokedAt, c.RevocationReason = FromMicros(revokedAt), core.RevocationReason(reason)
	return c, nil
}
