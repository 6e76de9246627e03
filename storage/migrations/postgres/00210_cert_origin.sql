-- +goose Up
-- A renewal's requester is "renew:<serial>" of the certificate it renewed;
-- origin is who asked for the first certificate of its line ("apikey:ID",
-- "mtls:NAME", …), so a renewal is judged by that credential's limits and
-- counted against its cap without walking the line back (which a line of
-- hourly renewals makes long). Empty for everything else. 00220 fills it
-- in for the renewals made before; a node still on the previous release
-- records none, and ra walks those back to the nearest recorded origin.
--
-- Adding a column takes the table's exclusive lock for a moment. Behind a
-- transaction that holds the table (pg_dump, a long report) it would wait
-- with every node's queries on certificates queued behind it, so it gives
-- up after 5 s and ca serve says why: start it again when that ends.
SET LOCAL lock_timeout = '5s';
ALTER TABLE certificates ADD COLUMN origin TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE certificates DROP COLUMN origin;
