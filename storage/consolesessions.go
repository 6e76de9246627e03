package storage

import (
	"context"
	"fmt"
	"time"
)

// ConsoleSession is a web console sign-in. ID is the SHA-256 of the
// session secret the browser holds; the secret itself is never stored.
type ConsoleSession struct {
	ID        []byte
	KeyID     string // the API key that signed in
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateConsoleSession stores a new session and prunes the expired ones.
func (d *DB) CreateConsoleSession(ctx context.Context, s *ConsoleSession) error {
	if _, err := d.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= ?`, Micros(s.CreatedAt)); err != nil {
		return fmt.Errorf("pruning console sessions: %w", err)
	}
	if _, err := d.Exec(ctx, `INSERT INTO console_sessions (id, key_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		s.ID, s.KeyID, Micros(s.CreatedAt), Micros(s.ExpiresAt)); err != nil {
		return fmt.Errorf("storing console session: %w", err)
	}
	return nil
}

// ConsoleSessionByID reads a session (expired or not) by the hash of its
// secret, or returns core.ErrNotFound: never created, signed out or pruned.
func (d *DB) ConsoleSessionByID(ctx context.Context, id []byte) (*ConsoleSession, error) {
	s := ConsoleSession{ID: id}
	var created, expires int64
	err := d.QueryRow(ctx, `SELECT key_id, created_at, expires_at FROM console_sessions WHERE id = ?`, id).Scan(&s.KeyID, &created, &expires)
	if err != nil {
		return nil, notFound(err, "reading console session")
	}
	s.CreatedAt, s.ExpiresAt = FromMicros(created), FromMicros(expires)
	return &s, nil
}

// EndConsoleSession deletes a session (signing out). Ending one that does
// not exist is not an error: the outcome is the same.
func (d *DB) EndConsoleSession(ctx context.Context, id []byte) error {
	if _, err := d.Exec(ctx, `DELETE FROM console_sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("ending console session: %w", err)
	}
	return nil
}
