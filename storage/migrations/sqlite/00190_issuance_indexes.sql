-- +goose Up
-- Cheaper issuance. Each certificate's row is written three times
-- (reserved, intent, valid), and every index on a column a write changes
-- is rewritten with it. Two indexes served only the revocation readers
-- (CRLs, the OCSP sweep) yet held status, and one of them updated_at too,
-- so each issuance rewrote their entries three and five times for rows
-- they are never asked for: they become partial indexes of the revoked
-- rows, which issuance never writes. The names' serial index served only
-- ON DELETE CASCADE and cost a page at a random place per certificate;
-- certificates are never deleted (a DELETE would now read
-- certificate_names through). Measured with scripts/bench-issue.sh, 8
-- alternating pairs on a 2-core machine: the certificate writer's CPU per
-- certificate 208 -> 173 us (perf samples), the whole server's 776 -> 710
-- us, c=32 median 2,266 -> 2,742/s, and 1,760 -> 1,662 bytes per
-- certificate on disk.
--
-- What the queries that used the dropped indexes use now (EXPLAIN QUERY
-- PLAN; storage TestRevocationQueriesIndexed):
--   EachRevoked, LatestRevocation (updated_at)    certificates_revoked_updated
--   the same of the previous release, on revoked_at, from nodes not yet
--   upgraded during a rolling upgrade              certificates_revoked_at
--   listing by issuer                              certificates_issuer
--   listing by issuer and status revoked           certificates_revoked_at
-- The previous release binds the status as a parameter: SQLite compares
-- the bound value with a partial index's WHERE (re-preparing the statement
-- when it is bound), so those nodes keep their index. certificates_issuer
-- is written once per certificate, at the end of its issuer's entries (it
-- holds no column a later write changes). It is created before the partial
-- indexes on purpose: without statistics SQLite takes, of two equal
-- candidates, the index created last, and listing an issuer's revoked
-- certificates should read the partial one.
CREATE INDEX certificates_issuer ON certificates (issuer_id);
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
DROP INDEX certificates_issuer;
