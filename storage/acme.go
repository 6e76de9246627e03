package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// ACME repository: accounts, orders, authorizations, challenges, the
// certificates issued through ACME and the EAB key ids. Every lookup is
// scoped to an endpoint, so one endpoint never sees another's objects.
// Status values are the RFC 8555 strings; storage keeps them as given and
// never derives one (package acme computes "ready" and "expired").

// ACMEAccount is an ACME account (RFC 8555 §7.1.2).
type ACMEAccount struct {
	ID         string
	Endpoint   string
	Thumbprint string // RFC 7638 thumbprint of the account key, base64url
	JWK        []byte // the public key as JSON
	Status     string // valid, deactivated, revoked
	Contact    []string
	EABKID     string // the EAB key id bound at creation, or ""
	CreatedAt  time.Time
}

// ACMEIdentifier is an order identifier (RFC 8555 §9.7.7: dns; RFC 8738: ip).
type ACMEIdentifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ACMEEABKey is an external account binding key id. The key is in the HSM.
type ACMEEABKey struct {
	KID      string
	Endpoint string
	// Names limits what the bound account may order (DNS suffixes and IP
	// prefixes, ra.Limits); empty: only the endpoint's policy.
	Names     []string
	CreatedAt time.Time
	AccountID string    // "" while unbound
	RevokedAt time.Time // zero while usable
}

// CreateACMEAccount inserts a. If a.EABKID is set, the EAB key is bound to
// the account in the same transaction; a key that is unknown, revoked,
// already bound or of another endpoint fails with KindForbidden. A key
// thumbprint already registered on the endpoint fails with KindConflict.
func (d *DB) CreateACMEAccount(ctx context.Context, a *ACMEAccount) error {
	contact, err := json.Marshal(nonNil(a.Contact))
	if err != nil {
		return fmt.Errorf("encoding contact: %w", err)
	}
	return d.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO acme_accounts
			(id, endpoint, thumbprint, jwk, status, contact, eab_kid, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint, thumbprint) DO NOTHING`,
			a.ID, a.Endpoint, a.Thumbprint, a.JWK, a.Status, string(contact), a.EABKID, Micros(a.CreatedAt))
		if err != nil {
			return fmt.Errorf("inserting ACME account: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.KindConflict, "an account with this key already exists")
		}
		if a.EABKID == "" {
			return nil
		}
		res, err = tx.Exec(ctx, `UPDATE acme_eab_keys SET account_id = ?
			WHERE kid = ? AND endpoint = ? AND account_id = '' AND revoked = 0`, a.ID, a.EABKID, a.Endpoint)
		if err != nil {
			return fmt.Errorf("binding EAB key: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return core.Errorf(core.KindForbidden, "external account key is unknown, revoked or already bound")
		}
		return nil
	})
}

const accountCols = `id, endpoint, thumbprint, jwk, status, contact, eab_kid, created`

func scanAccount(row interface{ Scan(...any) error }) (*ACMEAccount, error) {
	var (
		a       ACMEAccount
		contact string
		created int64
	)
	if err := row.Scan(&a.ID, &a.Endpoint, &a.Thumbprint, &a.JWK, &a.Status, &contact, &a.EABKID, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(contact), &a.Contact); err != nil {
		return nil, fmt.Errorf("decoding account contact: %w", err)
	}
	a.CreatedAt = FromMicros(created)
	return &a, nil
}

// ACMEAccount returns the account id of endpoint, or core.ErrNotFound.
func (d *DB) ACMEAccount(ctx context.Context, endpoint, id string) (*ACMEAccount, error) {
	a, err := scanAccount(d.QueryRow(ctx, `SELECT `+accountCols+` FROM acme_accounts
		WHERE id = ? AND endpoint = ?`, id, endpoint))
	if err != nil {
		return nil, notFound(err, "reading ACME account")
	}
	return a, nil
}

// ACMEAccountByThumbprint returns the endpoint's account with that key.
func (d *DB) ACMEAccountByThumbprint(ctx context.Context, endpoint, thumbprint string) (*ACMEAccount, error) {
	a, err := scanAccount(d.QueryRow(ctx, `SELECT `+accountCols+` FROM acme_accounts
		WHERE endpoint = ? AND thumbprint = ?`, endpoint, thumbprint))
	if err != nil {
		return nil, notFound(err, "reading ACME account by key")
	}
	return a, nil
}

// UpdateACMEAccount sets the status and contact of a valid account. An
// account that is no longer valid is not changed (KindConflict).
func (d *DB) UpdateACMEAccount(ctx context.Context, endpoint, id, status string, contact []string) error {
	c, err := json.Marshal(nonNil(contact))
	if err != nil {
		return fmt.Errorf("encoding contact: %w", err)
	}
	res, err := d.Exec(ctx, `UPDATE acme_accounts SET status = ?, contact = ?
		WHERE id = ? AND endpoint = ? AND status = 'valid'`, status, string(c), id, endpoint)
	if err != nil {
		return fmt.Errorf("updating ACME account: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return core.Errorf(core.KindConflict, "account is not valid")
	}
	return nil
}

// ChangeACMEAccountKey replaces the account key if it is still oldThumb
// (RFC 8555 §7.3.5). If another account of the endpoint already uses the
// new key, it fails with KindConflict and returns that account's id.
func (d *DB) ChangeACMEAccountKey(ctx context.Context, endpoint, id, oldThumb, newThumb string, jwk []byte) (string, error) {
	var other string
	err := d.InTx(ctx, func(tx *Tx) error {
		err := tx.QueryRow(ctx, `SELECT id FROM acme_accounts WHERE endpoint = ? AND thumbprint = ?`,
			endpoint, newThumb).Scan(&other)
		if err == nil {
			return core.Errorf(core.KindConflict, "the new key is already in use by another account")
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("checking new account key: %w", err)
		}
		res, err := tx.Exec(ctx, `UPDATE acme_accounts SET thumbprint = ?, jwk = ?
			WHERE id = ? AND endpoint = ? AND thumbprint = ? AND status = 'valid'`,
			newThumb, jwk, id, endpoint, oldThumb)
		if isUniqueViolation(err) {
			// Another keyChange to the same key committed between the
			// SELECT and this UPDATE (PostgreSQL's read committed).
			return core.Errorf(core.KindConflict, "the new key is already in use by another account")
		}
		if err != nil {
			return fmt.Errorf("changing account key: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return core.Errorf(core.KindConflict, "account key changed concurrently or account not valid")
		}
		return nil
	})
	return other, err
}

// CreateACMEEABKey records a new EAB key id for endpoint. The caller has
// already put the HMAC key into the HSM under the same id.
// names limits what its accounts may order (empty: only the policy).
func (d *DB) CreateACMEEABKey(ctx context.Context, kid, endpoint string, names []string, created time.Time) error {
	_, err := d.Exec(ctx, `INSERT INTO acme_eab_keys (kid, endpoint, names, created) VALUES (?, ?, ?, ?)`,
		kid, endpoint, strings.Join(names, " "), Micros(created))
	if err != nil {
		return fmt.Errorf("inserting EAB key id: %w", err)
	}
	return nil
}

// ACMEEABKey returns the EAB key id record, or core.ErrNotFound.
func (d *DB) ACMEEABKey(ctx context.Context, kid string) (*ACMEEABKey, error) {
	k, err := scanEABKey(d.QueryRow(ctx, `SELECT `+eabColumns+` FROM acme_eab_keys WHERE kid = ?`, kid))
	if err != nil {
		return nil, notFound(err, "reading EAB key id")
	}
	return &k, nil
}

// ACMEEABKeys lists the EAB key ids of endpoint, oldest first.
func (d *DB) ACMEEABKeys(ctx context.Context, endpoint string) ([]ACMEEABKey, error) {
	return queryAll(ctx, d, "listing EAB key ids", `SELECT `+eabColumns+` FROM acme_eab_keys
		WHERE endpoint = ? ORDER BY created, kid`, []any{endpoint}, scanEABKey)
}

const eabColumns = `kid, endpoint, names, created, account_id, revoked`

func scanEABKey(r scanner) (ACMEEABKey, error) {
	var (
		k                ACMEEABKey
		names            string
		created, revoked int64
	)
	err := r.Scan(&k.KID, &k.Endpoint, &names, &created, &k.AccountID, &revoked)
	k.Names, k.CreatedAt, k.RevokedAt = strings.Fields(names), FromMicros(created), FromMicros(revoked)
	return k, err
}

// RevokeACMEEABKey marks the key id revoked so it can no longer bind an
// account. Accounts already bound stay valid. Unknown ids are not found.
func (d *DB) RevokeACMEEABKey(ctx context.Context, endpoint, kid string, at time.Time) error {
	res, err := d.Exec(ctx, `UPDATE acme_eab_keys SET revoked = ? WHERE kid = ? AND endpoint = ? AND revoked = 0`,
		Micros(at), kid, endpoint)
	if err != nil {
		return fmt.Errorf("revoking EAB key id: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return core.ErrNotFound
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
