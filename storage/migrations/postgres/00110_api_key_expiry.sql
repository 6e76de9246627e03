-- +goose Up
-- When an API key stops working (UTC unix microseconds); 0: never.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN expires_at;
