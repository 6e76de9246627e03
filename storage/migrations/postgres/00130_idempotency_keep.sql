-- +goose Up
-- Until when a claim is kept however old it is (UTC unix microseconds);
-- 0: a day, as before. A renewal's claim is kept until the certificate it
-- renews expires: a certificate renews once, not once a day. Claims made
-- before this release are given their certificate's end here (1 if it has
-- no record: nothing to keep); PruneIdempotencyKeys does the same for
-- those a node still on the previous release writes during an upgrade.
ALTER TABLE api_idempotency ADD COLUMN keep_until BIGINT NOT NULL DEFAULT 0;
UPDATE api_idempotency SET keep_until = COALESCE(
    (SELECT c.not_after FROM certificates c WHERE c.serial = substr(api_idempotency.principal, 7)), 1)
    WHERE idem_key = 'renewal' AND principal LIKE 'renew:%';

-- +goose Down
ALTER TABLE api_idempotency DROP COLUMN keep_until;
