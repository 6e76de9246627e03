package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// ACMEOrder is an ACME order (RFC 8555 §7.1.3) as stored. Status is one of
// pending, processing, valid, invalid: "ready" is derived by package acme
// from the authorizations.
type ACMEOrder struct {
	ID          string
	Endpoint    string
	AccountID   string
	Status      string
	Identifiers []ACMEIdentifier
	Profile     string
	Expires     time.Time
	Error       []byte // problem document JSON, or empty
	CertSerial  string // set when valid
	Replaces    string // ARI certID this order replaces (RFC 9773 §5), or ""
	CreatedAt   time.Time
	// Authzs are the order's authorizations in order, without challenges.
	Authzs []ACMEAuthz
}

// ACMEAuthz is an authorization (RFC 8555 §7.1.4). Status is pending,
// valid, invalid or deactivated; "expired" is derived from Expires.
type ACMEAuthz struct {
	ID         string
	Endpoint   string
	AccountID  string
	OrderID    string
	Identifier ACMEIdentifier // for a wildcard, the base name without "*."
	Wildcard   bool
	Status     string
	Expires    time.Time
	Challenges []ACMEChallenge
}

// ACMEChallenge is a challenge (RFC 8555 §7.1.5, §8).
type ACMEChallenge struct {
	ID        string
	AuthzID   string
	Type      string
	Token     string
	Status    string // pending, processing, valid, invalid
	Validated time.Time
	Error     []byte // problem document JSON, or empty
}

// ACMECert is a certificate issued through ACME, with the chains served at
// its certificate URL (each chain PEM, leaf first; Chains[0] is the default).
type ACMECert struct {
	Serial    string
	Endpoint  string
	AccountID string
	OrderID   string
	Chains    []string
	CreatedAt time.Time
}

// CreateACMEOrder inserts o with its authorizations and their challenges in
// one transaction, only while its account is valid: an account deactivated
// after the request was verified, but before this, gets no order
// (KindForbidden), so none appears after the deactivation's answer.
func (d *DB) CreateACMEOrder(ctx context.Context, o *ACMEOrder) error {
	ids, err := json.Marshal(o.Identifiers)
	if err != nil {
		return fmt.Errorf("encoding identifiers: %w", err)
	}
	return d.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO acme_orders (id, endpoint, account_id, status, identifiers,
			profile, expires, error, cert_serial, replaces, created) SELECT ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?
			WHERE EXISTS (SELECT 1 FROM acme_accounts WHERE id = ? AND endpoint = ? AND status = 'valid')`,
			o.ID, o.Endpoint, o.AccountID, o.Status, string(ids), o.Profile, Micros(o.Expires),
			o.Replaces, Micros(o.CreatedAt), o.AccountID, o.Endpoint)
		if err != nil {
			return fmt.Errorf("inserting ACME order: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("inserting ACME order: %w", err)
		} else if n != 1 {
			return core.Errorf(core.KindForbidden, "account is not valid")
		}
		for i, a := range o.Authzs {
			if _, err := tx.Exec(ctx, `INSERT INTO acme_authorizations (id, endpoint, account_id, order_id,
				ident_type, ident_value, wildcard, status, expires, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				a.ID, o.Endpoint, o.AccountID, o.ID, a.Identifier.Type, a.Identifier.Value, boolInt(a.Wildcard),
				a.Status, Micros(a.Expires), i); err != nil {
				return fmt.Errorf("inserting ACME authorization: %w", err)
			}
			for j, c := range a.Challenges {
				if _, err := tx.Exec(ctx, `INSERT INTO acme_challenges (id, authz_id, type, token, status, validated, position)
					VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, a.ID, c.Type, c.Token, c.Status, Micros(c.Validated), j); err != nil {
					return fmt.Errorf("inserting ACME challenge: %w", err)
				}
			}
		}
		return nil
	})
}

// ACMEOrder returns the order with its authorizations (without challenges).
func (d *DB) ACMEOrder(ctx context.Context, endpoint, id string) (*ACMEOrder, error) {
	var (
		o                ACMEOrder
		ids, perr        string
		expires, created int64
	)
	err := d.QueryRow(ctx, `SELECT id, endpoint, account_id, status, identifiers, profile, expires, error,
		cert_serial, replaces, created FROM acme_orders WHERE id = ? AND endpoint = ?`, id, endpoint).Scan(
		&o.ID, &o.Endpoint, &o.AccountID, &o.Status, &ids, &o.Profile, &expires, &perr, &o.CertSerial,
		&o.Replaces, &created)
	if err != nil {
		return nil, notFound(err, "reading ACME order")
	}
	if err := json.Unmarshal([]byte(ids), &o.Identifiers); err != nil {
		return nil, fmt.Errorf("decoding order identifiers: %w", err)
	}
	o.Expires, o.CreatedAt, o.Error = FromMicros(expires), FromMicros(created), bytesOrNil(perr)
	rows, err := d.Query(ctx, `SELECT `+authzCols+` FROM acme_authorizations WHERE order_id = ? ORDER BY position`, id)
	if err != nil {
		return nil, fmt.Errorf("reading order authorizations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAuthz(rows)
		if err != nil {
			return nil, fmt.Errorf("reading order authorization: %w", err)
		}
		o.Authzs = append(o.Authzs, *a)
	}
	return &o, rows.Err()
}

// ACMEOrderIDs lists the account's order ids, newest first, up to limit,
// starting after the order id cursor ("" for the first page). Orders that
// are invalid at now are left out (RFC 8555 §7.1.2.1): stored invalid, or
// pending and expired or with an authorization that is no longer pending
// or valid, or expired (the status package acme derives). A cursor that
// is not an order of the account is core.ErrNotFound.
func (d *DB) ACMEOrderIDs(ctx context.Context, endpoint, accountID, cursor string, now time.Time, limit int) ([]string, error) {
	q, args := `SELECT o.id FROM acme_orders o WHERE`, []any{}
	if cursor != "" {
		var n int
		if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM acme_orders WHERE id = ? AND account_id = ? AND endpoint = ?`,
			cursor, accountID, endpoint).Scan(&n); err != nil {
			return nil, fmt.Errorf("reading the orders cursor: %w", err)
		}
		if n == 0 {
			return nil, core.ErrNotFound
		}
		q = `SELECT o.id FROM acme_orders o, acme_orders c WHERE c.id = ?
			AND (o.created < c.created OR (o.created = c.created AND o.id < c.id)) AND`
		args = append(args, cursor)
	}
	q += ` o.account_id = ? AND o.endpoint = ? AND o.status <> 'invalid'
		AND NOT (o.status = 'pending' AND (o.expires <= ? OR EXISTS (SELECT 1 FROM acme_authorizations a
			WHERE a.order_id = o.id AND (a.status NOT IN ('pending', 'valid') OR a.expires <= ?))))
		ORDER BY o.created DESC, o.id DESC LIMIT ?`
	args = append(args, accountID, endpoint, Micros(now), Micros(now), limit)
	rows, err := d.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing ACME orders: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("reading ACME order id: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SetACMEOrderStatus moves the order from status from to status to, with an
// optional problem document. It reports whether the order was in from.
func (d *DB) SetACMEOrderStatus(ctx context.Context, endpoint, id, from, to string, problem []byte) (bool, error) {
	res, err := d.Exec(ctx, `UPDATE acme_orders SET status = ?, error = ? WHERE id = ? AND endpoint = ? AND status = ?`,
		to, string(problem), id, endpoint, from)
	if err != nil {
		return false, fmt.Errorf("updating ACME order: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishACMEOrder stores the issued certificate and marks the processing
// order valid, in one transaction.
func (d *DB) FinishACMEOrder(ctx context.Context, c *ACMECert) error {
	chains, err := json.Marshal(c.Chains)
	if err != nil {
		return fmt.Errorf("encoding chains: %w", err)
	}
	return d.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO acme_certificates (serial, endpoint, account_id, order_id, chains, created)
			VALUES (?, ?, ?, ?, ?, ?)`, c.Serial, c.Endpoint, c.AccountID, c.OrderID, string(chains),
			Micros(c.CreatedAt)); err != nil {
			return fmt.Errorf("inserting ACME certificate: %w", err)
		}
		res, err := tx.Exec(ctx, `UPDATE acme_orders SET status = 'valid', cert_serial = ?
			WHERE id = ? AND endpoint = ? AND status = 'processing'`, c.Serial, c.OrderID, c.Endpoint)
		if err != nil {
			return fmt.Errorf("updating ACME order: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return core.Errorf(core.KindConflict, "order is not processing")
		}
		return nil
	})
}

// ACMECert returns a certificate issued through endpoint, or core.ErrNotFound.
func (d *DB) ACMECert(ctx context.Context, endpoint, serial string) (*ACMECert, error) {
	var (
		c       ACMECert
		chains  string
		created int64
	)
	err := d.QueryRow(ctx, `SELECT serial, endpoint, account_id, order_id, chains, created FROM acme_certificates
		WHERE serial = ? AND endpoint = ?`, serial, endpoint).Scan(&c.Serial, &c.Endpoint, &c.AccountID,
		&c.OrderID, &chains, &created)
	if err != nil {
		return nil, notFound(err, "reading ACME certificate")
	}
	if err := json.Unmarshal([]byte(chains), &c.Chains); err != nil {
		return nil, fmt.Errorf("decoding chains: %w", err)
	}
	c.CreatedAt = FromMicros(created)
	return &c, nil
}

// ACMEOrderReplacing reports whether a non-invalid order of endpoint
// already replaces the ARI certID.
func (d *DB) ACMEOrderReplacing(ctx context.Context, endpoint, certID string) (bool, error) {
	var n int
	err := d.QueryRow(ctx, `SELECT COUNT(*) FROM acme_orders WHERE endpoint = ? AND replaces = ? AND status <> 'invalid'`,
		endpoint, certID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("checking replaced certificate: %w", err)
	}
	return n > 0, nil
}

const authzCols = `id, endpoint, account_id, order_id, ident_type, ident_value, wildcard, status, expires`

func scanAuthz(row interface{ Scan(...any) error }) (*ACMEAuthz, error) {
	var (
		a        ACMEAuthz
		wildcard int
		expires  int64
	)
	if err := row.Scan(&a.ID, &a.Endpoint, &a.AccountID, &a.OrderID, &a.Identifier.Type, &a.Identifier.Value,
		&wildcard, &a.Status, &expires); err != nil {
		return nil, err
	}
	a.Wildcard, a.Expires = wildcard != 0, FromMicros(expires)
	return &a, nil
}

// authzWithChallenges selects an authorization's columns and, per row,
// one of its challenges, in position order; the query's only parameters
// are appended by the caller's WHERE.
const authzWithChallenges = `SELECT a.id, a.endpoint, a.account_id, a.order_id, a.ident_type, a.ident_value,
	a.wildcard, a.status, a.expires, c.id, c.type, c.token, c.status, c.validated, c.error
	FROM acme_authorizations a JOIN acme_challenges c ON c.authz_id = a.id `

// ACMEAuthz returns the authorization with its challenges, in one query.
func (d *DB) ACMEAuthz(ctx context.Context, endpoint, id string) (*ACMEAuthz, error) {
	return d.scanAuthzChallenges(ctx, authzWithChallenges+`WHERE a.id = ? AND a.endpoint = ? ORDER BY c.position`,
		id, endpoint)
}

// ReusableACMEAuthz returns the account's valid authorization for the
// identifier (wildcard or not) that stays valid longest, if one is valid
// after validAfter, with its challenges; core.ErrNotFound otherwise.
func (d *DB) ReusableACMEAuthz(ctx context.Context, endpoint, accountID string, id ACMEIdentifier, wildcard bool, validAfter time.Time) (*ACMEAuthz, error) {
	var authzID string
	err := d.QueryRow(ctx, `SELECT id FROM acme_authorizations WHERE account_id = ? AND status = 'valid' AND expires > ?
		AND endpoint = ? AND ident_type = ? AND ident_value = ? AND wildcard = ? ORDER BY expires DESC LIMIT 1`,
		accountID, Micros(validAfter), endpoint, id.Type, id.Value, boolInt(wildcard)).Scan(&authzID)
	if err != nil {
		return nil, notFound(err, "finding a reusable ACME authorization")
	}
	return d.ACMEAuthz(ctx, endpoint, authzID)
}

// ACMEAuthzByChallenge returns the authorization, with its challenges, that
// the challenge challengeID of endpoint belongs to, in one query.
func (d *DB) ACMEAuthzByChallenge(ctx context.Context, endpoint, challengeID string) (*ACMEAuthz, error) {
	return d.scanAuthzChallenges(ctx, authzWithChallenges+`JOIN acme_challenges k ON k.authz_id = a.id
		WHERE k.id = ? AND a.endpoint = ? ORDER BY c.position`, challengeID, endpoint)
}

func (d *DB) scanAuthzChallenges(ctx context.Context, q string, args ...any) (*ACMEAuthz, error) {
	rows, err := d.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading ACME authorization: %w", err)
	}
	defer rows.Close()
	var a *ACMEAuthz
	for rows.Next() {
		var (
			row       ACMEAuthz
			wildcard  int
			expires   int64
			c         ACMEChallenge
			validated int64
			perr      string
		)
		if err := rows.Scan(&row.ID, &row.Endpoint, &row.AccountID, &row.OrderID, &row.Identifier.Type,
			&row.Identifier.Value, &wildcard, &row.Status, &expires, &c.ID, &c.Type, &c.Token, &c.Status,
			&validated, &perr); err != nil {
			return nil, fmt.Errorf("reading ACME authorization: %w", err)
		}
		if a == nil {
			row.Wildcard, row.Expires = wildcard != 0, FromMicros(expires)
			a = &row
		}
		c.AuthzID, c.Validated, c.Error = a.ID, FromMicros(validated), bytesOrNil(perr)
		a.Challenges = append(a.Challenges, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading ACME authorization: %w", err)
	}
	if a == nil {
		return nil, core.ErrNotFound
	}
	return a, nil
}

// SetACMEAuthzStatus moves an authorization from one status to another
// and reports whether it was in from.
func (d *DB) SetACMEAuthzStatus(ctx context.Context, endpoint, id, from, to string) (bool, error) {
	res, err := d.Exec(ctx, `UPDATE acme_authorizations SET status = ? WHERE id = ? AND endpoint = ? AND status = ?`,
		to, id, endpoint, from)
	if err != nil {
		return false, fmt.Errorf("updating ACME authorization: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeactivateACMEAuthz deactivates the authorization id if it is in status
// from (pending or valid), and reports whether it was. A valid one takes
// with it every valid authorization of the account that holds the same
// validation: a new order reuses a validation by copying the authorization
// with its valid challenge, token included (package acme), so each copy
// has a valid challenge with that token, and tokens are random (RFC 8555
// §8.3), so no independent validation has it.
func (d *DB) DeactivateACMEAuthz(ctx context.Context, endpoint, id, from string) (bool, error) {
	done := false
	err := d.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `UPDATE acme_authorizations SET status = 'deactivated'
			WHERE id = ? AND endpoint = ? AND status = ?`, id, endpoint, from)
		if err != nil {
			return fmt.Errorf("deactivating ACME authorization: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		done = true
		if from != "valid" {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE acme_authorizations SET status = 'deactivated'
			WHERE account_id = (SELECT account_id FROM acme_authorizations WHERE id = ?) AND status = 'valid'
			AND endpoint = ? AND EXISTS (SELECT 1 FROM acme_challenges c WHERE c.authz_id = acme_authorizations.id
				AND c.status = 'valid' AND c.token IN (SELECT token FROM acme_challenges WHERE authz_id = ? AND status = 'valid'))`,
			id, endpoint, id); err != nil {
			return fmt.Errorf("deactivating the copies of an ACME authorization: %w", err)
		}
		return nil
	})
	return done, err
}

// SetACMEChallengeStatus moves a challenge from one status to another,
// recording when it was validated and any problem, and reports whether it
// was in from.
func (d *DB) SetACMEChallengeStatus(ctx context.Context, id, from, to string, validated time.Time, problem []byte) (bool, error) {
	res, err := d.Exec(ctx, `UPDATE acme_challenges SET status = ?, validated = ?, error = ? WHERE id = ? AND status = ?`,
		to, Micros(validated), string(problem), id, from)
	if err != nil {
		return false, fmt.Errorf("updating ACME challenge: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SettleACMEChallenge records a validation result: the challenge moves
// from status from to to (valid or invalid, with when it was validated and
// any problem) and its pending authorization to the same status, in one
// transaction. It reports false, changing nothing, when the challenge was
// not in from.
func (d *DB) SettleACMEChallenge(ctx context.Context, endpoint, authzID, challengeID, from, to string,
	validated time.Time, problem []byte) (bool, error) {
	settled := false
	err := d.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `UPDATE acme_challenges SET status = ?, validated = ?, error = ?
			WHERE id = ? AND authz_id = ? AND status = ?`, to, Micros(validated), string(problem), challengeID, authzID, from)
		if err != nil {
			return fmt.Errorf("updating ACME challenge: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE acme_authorizations SET status = ? WHERE id = ? AND endpoint = ? AND status = 'pending'`,
			to, authzID, endpoint); err != nil {
			return fmt.Errorf("updating ACME authorization: %w", err)
		}
		settled = true
		return nil
	})
	return settled, err
}

// ValidACMEIdentifiers returns the identifiers the account holds valid,
// unexpired authorizations for (wildcards as "*.name").
func (d *DB) ValidACMEIdentifiers(ctx context.Context, endpoint, accountID string, now time.Time) ([]ACMEIdentifier, error) {
	rows, err := d.Query(ctx, `SELECT DISTINCT ident_type, ident_value, wildcard FROM acme_authorizations
		WHERE account_id = ? AND endpoint = ? AND status = 'valid' AND expires > ?`, accountID, endpoint, Micros(now))
	if err != nil {
		return nil, fmt.Errorf("listing valid authorizations: %w", err)
	}
	defer rows.Close()
	var out []ACMEIdentifier
	for rows.Next() {
		var (
			id ACMEIdentifier
			w  int
		)
		if err := rows.Scan(&id.Type, &id.Value, &w); err != nil {
			return nil, fmt.Errorf("reading authorization: %w", err)
		}
		if w != 0 {
			id.Value = "*." + id.Value
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func bytesOrNil(s string) []byte {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return []byte(s)
}
