-- +goose Up
-- The expiry metrics count the valid certificates ending within 24 hours,
-- 7 and 30 days. Through certificates_not_after each count read the row of
-- every certificate in its range to check its status: with 90-day
-- certificates the 30-day window is a third of the unexpired ones. This
-- index holds the valid rows' not_after only, so the count
-- (storage.CountExpiring: one statement, the status a literal, which a
-- generic plan needs to use a partial index) is an index-only scan of it.
-- Issuance adds one entry per certificate, when it is stored valid (its
-- reserved and intent row versions are not in it). Rows revoked since the
-- last vacuum are read to check their visibility: the count relies on
-- autovacuum, as the rest of the schema does.
--
-- Measured with 1,000,000 and 5,000,000 rows (not_after spread over
-- [now-30d, now+90d) in issuance order, 2% revoked, VACUUM ANALYZE), the
-- three counts as the metrics take them, best (median) of 9 in each of two
-- runs, on a busy 2-core machine:
--   1,000,000 rows  176-258 (283-322) ms -> 15 (21-23) ms
--   5,000,000 rows  855-870 (923-1,010) ms -> 73-76 (87-91) ms; 159,668
--                   buffers read (1.2 GB of rows) -> 3,363 (26 MB of index)
-- Building it blocked writes to certificates for 0.8 s at 1,000,000 rows
-- and 4.4 s at 5,000,000.
-- Behind a long writing transaction the build would wait with every
-- node's writes queued behind it: it gives up after 5 s instead (as 00210).
SET LOCAL lock_timeout = '5s';
CREATE INDEX certificates_valid_not_after ON certificates (not_after) WHERE status = 'valid';

-- +goose Down
DROP INDEX certificates_valid_not_after;
