-- +goose Up
-- Records the origin of every renewal made before 00210: each line is
-- followed forward from its first certificate, once, through a temporary
-- index of the renewals by the serial each renewed (certificates has no
-- index on requester). A line whose first certificate is missing keeps no
-- origin, and its renewals are refused (ra.origin). The prefix is compared
-- exactly, as ra does (SQLite's LIKE ignores case).
CREATE TEMPORARY TABLE renewal_links ON COMMIT DROP AS
    SELECT serial, substr(requester, 7) AS prev FROM certificates WHERE substr(requester, 1, 6) = 'renew:';
CREATE INDEX ON renewal_links (prev);
ANALYZE renewal_links;
WITH RECURSIVE line(serial, origin) AS (
    SELECT l.serial, p.requester FROM renewal_links l JOIN certificates p ON p.serial = l.prev
        WHERE substr(p.requester, 1, 6) <> 'renew:'
    UNION
    SELECT l.serial, line.origin FROM line JOIN renewal_links l ON l.prev = line.serial
)
UPDATE certificates SET origin = line.origin FROM line
    WHERE certificates.serial = line.serial AND certificates.origin = '';

-- +goose Down
SELECT 1;
