-- +goose Up
-- Settings of the installation that are not secret: one row per key.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- +goose Down
DROP TABLE settings;
