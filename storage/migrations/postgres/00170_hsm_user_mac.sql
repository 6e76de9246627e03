-- +goose Up
-- Authentication of the HSM's user rows, under a key derived from the KEK:
-- a MAC over name, role, PIN hash and creation time, so that someone who
-- can write the database cannot set a PIN, add a user or raise a role
-- without the unseal material. failures and locked are not covered. Empty:
-- written before this release, or by a node of the previous release; the
-- first unseal on this release authenticates every such row and binds that
-- into the wrapped KEK (hsm_meta users_mac), after which an empty one is
-- refused.
ALTER TABLE hsm_users ADD COLUMN mac BYTEA NOT NULL DEFAULT '\x'::bytea;

-- +goose Down
ALTER TABLE hsm_users DROP COLUMN mac;
