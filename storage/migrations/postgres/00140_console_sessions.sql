-- +goose Up
-- Web console sessions. The cookie holds a random session secret; only its
-- SHA-256 is kept (id), so a database reader cannot take over a session.
-- Signing out deletes the row, which ends the session on every node at
-- once; a row past expires_at (UTC unix microseconds) is dead and pruned.
CREATE TABLE console_sessions (
    id         BYTEA PRIMARY KEY,
    key_id     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- +goose Down
DROP TABLE console_sessions;
