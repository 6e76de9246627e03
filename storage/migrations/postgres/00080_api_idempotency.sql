-- +goose Up
-- Idempotency keys of POST /api/v1/certificates (the Idempotency-Key
-- header, draft-ietf-httpapi-idempotency-key-header): a client that retries
-- an issuance with the same key gets the certificate of the first attempt,
-- not a second one. serial is '' while the first attempt runs. Rows are
-- kept for a day (created_at, UTC unix microseconds).
CREATE TABLE api_idempotency (
    principal    TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    serial       TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);

-- +goose Down
DROP TABLE api_idempotency;
