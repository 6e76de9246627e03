-- +goose Up
-- Every certificate from the moment its serial is reserved. The PRIMARY KEY on
-- serial is what guarantees a serial is never reused: reserving is an INSERT,
-- and a collision fails instead of overwriting.
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,
    issuer_id         TEXT NOT NULL,
    profile           TEXT NOT NULL,
    requester         TEXT NOT NULL,
    subject           TEXT NOT NULL DEFAULT '',
    names             TEXT NOT NULL DEFAULT '', -- newline-joined SANs
    not_before        BIGINT NOT NULL DEFAULT 0,
    not_after         BIGINT NOT NULL DEFAULT 0,
    status            TEXT NOT NULL,            -- core.CertStatus: reserved|valid|revoked
    tbs               BYTEA,                     -- the linted to-be-signed certificate (the intent)
    der               BYTEA,                     -- the signed certificate, NULL while reserved
    revoked_at        BIGINT NOT NULL DEFAULT 0,
    revocation_reason INTEGER NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
-- The CRL builder streams revoked rows per issuer ordered by revoked_at, serial.
CREATE INDEX certificates_issuer_status_revoked ON certificates (issuer_id, status, revoked_at);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_status_created ON certificates (status, created_at);

-- One row per name (DNS name, IP, email, URI) for name filters.
CREATE TABLE certificate_names (
    serial TEXT NOT NULL REFERENCES certificates (serial) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    PRIMARY KEY (name, serial)
);
CREATE INDEX certificate_names_serial ON certificate_names (serial);

-- REST API keys. Only the SHA-256 hash of a key is stored.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    hash         BYTEA NOT NULL UNIQUE,
    scopes       TEXT NOT NULL DEFAULT '', -- space-separated
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE certificate_names;
DROP TABLE certificates;
