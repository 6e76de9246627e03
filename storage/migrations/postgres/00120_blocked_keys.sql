-- +goose Up
-- SHA-256 of the certificate's DER SubjectPublicKeyInfo (as Boulder keys
-- its blockedKeys table). Written with the intent; NULL on rows from before
-- this migration until the node's backfill reaches them.
ALTER TABLE certificates ADD COLUMN key_hash BYTEA;
CREATE INDEX certificates_key_hash ON certificates (key_hash);

-- Keys reported compromised: no certificate is issued for one again, and
-- every unexpired certificate with one is revoked for keyCompromise.
CREATE TABLE blocked_keys (
    key_hash        BYTEA PRIMARY KEY,
    serial          TEXT NOT NULL DEFAULT '',    -- the certificate whose revocation blocked it, if any
    invalidity_date BIGINT NOT NULL DEFAULT 0,   -- given to the certificates revoked for it
    blocked_at      BIGINT NOT NULL,
    comment         TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE blocked_keys;
DROP INDEX certificates_key_hash;
ALTER TABLE certificates DROP COLUMN key_hash;
