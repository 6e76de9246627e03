-- +goose Up
-- The HSM checks each key it opens against the authenticated audit entries
-- about it (rotations, destruction, non-extractable): an index by object
-- keeps that one lookup per key load as the log grows.
CREATE INDEX hsm_audit_object ON hsm_audit (object);

-- +goose Down
DROP INDEX hsm_audit_object;
