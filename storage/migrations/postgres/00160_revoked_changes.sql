-- +goose Up
-- Revocations are read by the time their status last changed (updated_at):
-- a reason raised to keyCompromise keeps revoked_at, and delta CRLs and the
-- OCSP sweep must still see it. The revoked_at index stays for nodes of the
-- previous release during a rolling upgrade.
CREATE INDEX certificates_issuer_status_updated ON certificates (issuer_id, status, updated_at);

-- +goose Down
DROP INDEX certificates_issuer_status_updated;
