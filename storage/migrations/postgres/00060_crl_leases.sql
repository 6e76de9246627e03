-- +goose Up
-- One lease per issuer for building its CRLs, so at most one node at a time
-- takes a CRL number and reads the revocations (numbers and snapshots then
-- come in the same order). holder is a random id of the Builder that holds
-- it; expires_at is UTC unix microseconds, after which another may take it.
CREATE TABLE crl_leases (
    issuer_id  TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE crl_leases;
