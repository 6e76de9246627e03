-- +goose Up
-- Authentication of the HSM audit log, under a key derived from the KEK:
-- each entry appended by an unsealed module carries a MAC over its hash
-- (so over the chain before it), and the head a MAC over the chain up to
-- mac_seq and mac_from, where authentication began. A module of the
-- previous release, or an append made while sealed, writes no entry MAC
-- and leaves the head's as it was: those entries show as not
-- authenticated. Empty and 0: nothing authenticated yet (every existing
-- log, until its first append after the upgrade).
ALTER TABLE hsm_audit ADD COLUMN mac BYTEA NOT NULL DEFAULT '\x'::bytea;
ALTER TABLE hsm_audit_head ADD COLUMN mac_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hsm_audit_head ADD COLUMN mac_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hsm_audit_head ADD COLUMN mac BYTEA NOT NULL DEFAULT '\x'::bytea;

-- +goose Down
ALTER TABLE hsm_audit DROP COLUMN mac;
ALTER TABLE hsm_audit_head DROP COLUMN mac;
ALTER TABLE hsm_audit_head DROP COLUMN mac_seq;
ALTER TABLE hsm_audit_head DROP COLUMN mac_from;
