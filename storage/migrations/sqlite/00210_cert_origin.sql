-- +goose Up
-- A renewal's requester is "renew:<serial>" of the certificate it renewed;
-- origin is who asked for the first certificate of its line ("apikey:ID",
-- "mtls:NAME", …), so a renewal is judged by that credential's limits and
-- counted against its cap without walking the line back (which a line of
-- hourly renewals makes long). Empty for everything else. 00220 fills it
-- in for the renewals made before; ra walks back any left without one.
ALTER TABLE certificates ADD COLUMN origin TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE certificates DROP COLUMN origin;
