-- +goose Up
-- Records the origin of every renewal made before 00210: each line is
-- followed forward from its first certificate, once, through a scratch
-- table of the renewals indexed by the serial each renewed (certificates
-- has no index on requester), dropped again in the same transaction: a
-- table of the schema rather than a TEMPORARY one, which hardened servers
-- may not allow. A line whose first certificate is missing keeps no
-- origin, and its renewals are refused (ra.origin). The prefix is compared
-- exactly, as ra does (SQLite's LIKE ignores case).
CREATE TABLE origin_fill_links AS
    SELECT serial, substr(requester, 7) AS prev FROM certificates WHERE substr(requester, 1, 6) = 'renew:';
CREATE INDEX origin_fill_links_prev ON origin_fill_links (prev);
ANALYZE origin_fill_links;
WITH RECURSIVE line(serial, origin) AS (
    SELECT l.serial, p.requester FROM origin_fill_links l JOIN certificates p ON p.serial = l.prev
        WHERE substr(p.requester, 1, 6) <> 'renew:'
    UNION
    SELECT l.serial, line.origin FROM line JOIN origin_fill_links l ON l.prev = line.serial
)
UPDATE certificates SET origin = line.origin FROM line
    WHERE certificates.serial = line.serial AND certificates.origin = '';
DROP TABLE origin_fill_links;

-- +goose Down
SELECT 1;
