-- +goose Up
-- What one API key may ask for, within the policy (like a Vault PKI role):
-- names holds DNS suffixes and IP prefixes, profiles profile names, both
-- space-separated; '' means no limit beyond the policy.
ALTER TABLE api_keys ADD COLUMN names TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN profiles TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE api_keys DROP COLUMN profiles;
ALTER TABLE api_keys DROP COLUMN names;
