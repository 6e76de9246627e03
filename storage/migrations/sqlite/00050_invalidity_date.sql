-- +goose Up
-- RFC 5280 §5.3.2: when the key is known or suspected to have been
-- compromised, or the certificate otherwise became invalid (UTC unix
-- microseconds; 0 = not given). Written into the CRL entry.
ALTER TABLE certificates ADD COLUMN invalidity_date BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE certificates DROP COLUMN invalidity_date;
