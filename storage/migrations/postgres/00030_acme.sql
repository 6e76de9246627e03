-- +goose Up
-- ACME (RFC 8555) state, one set of rows per configured endpoint.
-- Accounts are found by key thumbprint (newAccount, keyChange) and by id (kid).
CREATE TABLE acme_accounts (
    id         TEXT PRIMARY KEY,
    endpoint   TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    jwk        BYTEA NOT NULL,
    status     TEXT NOT NULL,
    contact    TEXT NOT NULL DEFAULT '[]',
    eab_kid    TEXT NOT NULL DEFAULT '',
    created    BIGINT NOT NULL,
    UNIQUE (endpoint, thumbprint)
);

CREATE TABLE acme_orders (
    id          TEXT PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES acme_accounts (id),
    status      TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    profile     TEXT NOT NULL DEFAULT '',
    expires     BIGINT NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    cert_serial TEXT NOT NULL DEFAULT '',
    replaces    TEXT NOT NULL DEFAULT '',
    created     BIGINT NOT NULL
);
-- The account's orders list, newest first.
CREATE INDEX acme_orders_account ON acme_orders (account_id, created);
-- ARI: is this certificate already replaced by another order?
CREATE INDEX acme_orders_replaces ON acme_orders (endpoint, replaces) WHERE replaces <> '';

CREATE TABLE acme_authorizations (
    id          TEXT PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES acme_accounts (id),
    order_id    TEXT NOT NULL REFERENCES acme_orders (id),
    ident_type  TEXT NOT NULL,
    ident_value TEXT NOT NULL,
    wildcard    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    expires     BIGINT NOT NULL,
    position    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX acme_authorizations_order ON acme_authorizations (order_id, position);
-- revokeCert: which names has this account proved control of?
CREATE INDEX acme_authorizations_account ON acme_authorizations (account_id, status, expires);

CREATE TABLE acme_challenges (
    id        TEXT PRIMARY KEY,
    authz_id  TEXT NOT NULL REFERENCES acme_authorizations (id),
    type      TEXT NOT NULL,
    token     TEXT NOT NULL,
    status    TEXT NOT NULL,
    validated BIGINT NOT NULL DEFAULT 0,
    error     TEXT NOT NULL DEFAULT '',
    position  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX acme_challenges_authz ON acme_challenges (authz_id, position);

-- Certificates issued through ACME: who owns them and the chains to serve.
CREATE TABLE acme_certificates (
    serial     TEXT PRIMARY KEY,
    endpoint   TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES acme_accounts (id),
    order_id   TEXT NOT NULL REFERENCES acme_orders (id),
    chains     TEXT NOT NULL,
    created    BIGINT NOT NULL
);

-- External account binding key ids. The HMAC key itself lives in the HSM:
-- there is deliberately no column for it.
CREATE TABLE acme_eab_keys (
    kid        TEXT PRIMARY KEY,
    endpoint   TEXT NOT NULL,
    created    BIGINT NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    revoked    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX acme_eab_keys_endpoint ON acme_eab_keys (endpoint, created);

-- +goose Down
DROP TABLE acme_eab_keys;
DROP TABLE acme_certificates;
DROP TABLE acme_challenges;
DROP TABLE acme_authorizations;
DROP TABLE acme_orders;
DROP TABLE acme_accounts;
