package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// APIKey is a stored REST API key. Only the SHA-256 hash of the secret is
// kept; the secret itself is shown once, when the key is created.
type APIKey struct {
	ID     string
	Name   string
	Hash   []byte
	Scopes []string
	// Names and Profiles limit what the key may ask for (DNS suffixes and
	// IP prefixes; profile names). Empty: only the policy limits it.
	Names      []string
	Profiles   []string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: not revoked
	LastUsedAt time.Time // zero: never used
}

// CreateAPIKey stores a new key. A duplicate id or hash is a KindConflict
// error.
func (d *DB) CreateAPIKey(ctx context.Context, k *APIKey) error {
	_, err := d.Exec(ctx, `INSERT INTO api_keys (id, name, hash, scopes, names, profiles, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, strings.Join(k.Scopes, " "), strings.Join(k.Names, " "), strings.Join(k.Profiles, " "), Micros(k.CreatedAt),
		Micros(k.ExpiresAt))
	if isUniqueViolation(err) {
		return core.Errorf(core.KindConflict, "an API key with this id already exists")
	}
	if err != nil {
		return fmt.Errorf("storing API key: %w", err)
	}
	return nil
}

const apiKeyColumns = `id, name, hash, scopes, names, profiles, created_at, expires_at, revoked_at, last_used_at`

func scanAPIKey(row interface{ Scan(...any) error }) (*APIKey, error) {
	var k APIKey
	var scopes, names, profiles string
	var created, expires, revoked, used int64
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &scopes, &names, &profiles, &created, &expires, &revoked, &used); err != nil {
		return nil, err
	}
	k.ExpiresAt = FromMicros(expires)
	k.Scopes, k.Names, k.Profiles = strings.Fields(scopes), strings.Fields(names), strings.Fields(profiles)
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = FromMicros(created), FromMicros(revoked), FromMicros(used)
	return &k, nil
}

// APIKeyByHash finds a key (revoked or not) by the hash of its secret, or
// returns core.ErrNotFound.
func (d *DB) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	k, err := scanAPIKey(d.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if err != nil {
		return nil, notFound(err, "reading API key")
	}
	return k, nil
}

// APIKeyByID finds a key (revoked or not) by id, or returns
// core.ErrNotFound.
func (d *DB) APIKeyByID(ctx context.Context, id string) (*APIKey, error) {
	k, err := scanAPIKey(d.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "reading API key")
	}
	return k, nil
}

// APIKeys lists every key, oldest first.
func (d *DB) APIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := d.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing API keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("listing API keys: %w", err)
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

// RevokeAPIKey marks a key revoked. Revoking an unknown key is
// core.ErrNotFound; revoking a revoked key changes nothing.
func (d *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := d.Exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, Micros(at), id)
	if err != nil {
		return fmt.Errorf("revoking API key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var one int
	err = d.QueryRow(ctx, `SELECT 1 FROM api_keys WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Errorf(core.KindNotFound, "no API key has id %q", id)
	}
	if err != nil {
		return fmt.Errorf("reading API key: %w", err)
	}
	return nil
}

// TouchAPIKey records when a key was last used.
func (d *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if _, err := d.Exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, Micros(at), id); err != nil {
		return fmt.Errorf("recording API key use: %w", err)
	}
	return nil
}
