-- +goose Up
-- The names an EAB key's accounts may order (ra.Limits: DNS suffixes and
-- IP prefixes, space-separated); '' means only the endpoint's policy.
ALTER TABLE acme_eab_keys ADD COLUMN names TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE acme_eab_keys DROP COLUMN names;
