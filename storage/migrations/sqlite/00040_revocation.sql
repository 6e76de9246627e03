-- +goose Up
-- One CRL number sequence per issuer, shared by its full and delta CRLs
-- (RFC 5280 §5.2.3: numbers only ever increase).
CREATE TABLE crl_numbers (
    issuer_id   TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);

-- Signed CRLs: per issuer and kind the current one and the one before it, so
-- a node that starts or a build that fails always has one to serve.
CREATE TABLE crls (
    issuer_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,             -- full|delta
    number      BIGINT NOT NULL,
    base_number BIGINT NOT NULL DEFAULT 0, -- the complete CRL a delta builds on
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der         BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (issuer_id, kind, number)
);

-- +goose Down
DROP TABLE crls;
DROP TABLE crl_numbers;
