-- +goose Up
-- Until when a claim is kept however old it is (UTC unix microseconds);
-- 0: a day, as before. A renewal's claim is kept until the certificate it
-- renews expires: a certificate renews once, not once a day.
ALTER TABLE api_idempotency ADD COLUMN keep_until BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE api_idempotency DROP COLUMN keep_until;
