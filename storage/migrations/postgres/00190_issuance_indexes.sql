-- +goose Up
-- Cheaper issuance. Each certificate's row is written three times
-- (reserved, intent, valid); none of these updates is HOT, so each one
-- adds an entry to every index whose WHERE the new row satisfies. Two
-- indexes served only the revocation readers (CRLs, the OCSP sweep): they
-- become partial indexes of the revoked rows, which issuance never writes.
-- The names' serial index served only ON DELETE CASCADE; certificates are
-- never deleted (a DELETE would now read certificate_names through).
-- Measured with STORE=postgres scripts/bench-issue.sh, 3 alternating
-- pairs: PostgreSQL's own CPU per certificate 357 -> 311 us, c=32 mean
-- 1,883 -> 2,025/s.
--
-- What the queries that used the dropped indexes use now (EXPLAIN, with
-- statistics, 400,000 rows):
--   EachRevoked, LatestRevocation (updated_at)    certificates_revoked_updated
--   the same of the previous release, on revoked_at, from nodes not yet
--   upgraded during a rolling upgrade              certificates_revoked_at
--   listing by issuer                              certificates_issuer_serial
--   listing by issuer and status revoked           certificates_revoked_at
-- The previous release binds the status as a parameter. PostgreSQL uses a
-- partial index only in a plan made for the bound values (a custom plan),
-- which it keeps choosing for those queries because the generic plan would
-- scan the table (EXPLAIN EXECUTE: 8 custom plans, 0 generic); with
-- plan_cache_mode = force_generic_plan those nodes would scan until they
-- are upgraded. This release writes the status as a literal.
--
-- The issuer index is (issuer_id, serial), not SQLite's (issuer_id): it
-- gives the listing its order, and a plain (issuer_id) index, with one or
-- two issuers, was taken by the generic plan of the intent's UPDATE
-- (serial = $10 AND issuer_id = $11) on a young table and read every row
-- of the issuer per certificate: 236 issuances/s through the CertWriter
-- at concurrency 32, against about 5,700/s with this one, and twice PostgreSQL's
-- CPU per certificate in the REST runs.
CREATE INDEX certificates_issuer_serial ON certificates (issuer_id, serial);
CREATE INDEX certificates_revoked_updated ON certificates (issuer_id, updated_at) WHERE status = 'revoked';
CREATE INDEX certificates_revoked_at ON certificates (issuer_id, revoked_at) WHERE status = 'revoked';
DROP INDEX certificates_issuer_status_updated;
DROP INDEX certificates_issuer_status_revoked;
DROP INDEX certificate_names_serial;

-- +goose Down
CREATE INDEX certificate_names_serial ON certificate_names (serial);
CREATE INDEX certificates_issuer_status_revoked ON certificates (issuer_id, status, revoked_at);
CREATE INDEX certificates_issuer_status_updated ON certificates (issuer_id, status, updated_at);
DROP INDEX certificates_revoked_at;
DROP INDEX certificates_revoked_updated;
DROP INDEX certificates_issuer_serial;
