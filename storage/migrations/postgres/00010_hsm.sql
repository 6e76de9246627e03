-- +goose Up
-- The embedded HSM's keystore and audit log. Nothing here is secret in the
-- clear: object secrets are AES-256-GCM sealed under the module's KEK, PINs
-- are Argon2id hashes, and the KEK itself is stored only wrapped.

-- Module-wide records: unseal method, wrapped KEK, KDF parameters, Shamir
-- commitments.
CREATE TABLE hsm_meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE hsm_users (
    name     TEXT PRIMARY KEY,
    role     TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked   INTEGER NOT NULL DEFAULT 0,
    created  BIGINT NOT NULL
);

-- One row per key version. attrs is the canonical attribute encoding bound
-- into the seal's additional data; owner and label are copies kept for
-- lookups and checked against attrs when the object is opened.
CREATE TABLE hsm_objects (
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    owner   TEXT NOT NULL,
    label   TEXT NOT NULL,
    attrs   BYTEA NOT NULL,
    sealed  BYTEA NOT NULL,
    created BIGINT NOT NULL,
    uses    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (id, version)
);
CREATE INDEX hsm_objects_owner ON hsm_objects (owner);
CREATE INDEX hsm_objects_label ON hsm_objects (label);

-- Hash-chained audit log: hash = SHA-256 over the canonical encoding of the
-- entry including prev_hash.
CREATE TABLE hsm_audit (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);

-- The chain's head: appenders lock this row first (so appends from several
-- nodes serialise), and verification compares the last entry with it (so a
-- deleted tail is found).
CREATE TABLE hsm_audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO hsm_audit_head (id, seq, hash) VALUES (1, 0, '\x'::bytea);

-- +goose Down
DROP TABLE hsm_audit_head;
DROP TABLE hsm_audit;
DROP TABLE hsm_objects;
DROP TABLE hsm_users;
DROP TABLE hsm_meta;
