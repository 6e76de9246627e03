-- +goose Up
-- When a challenge or an order entered "processing", so that one left there
-- by a node that stopped (a crash, or a shutdown mid-validation, which sets
-- it back to 0) can be found and settled by any node: a challenge is
-- validated again, an order whose finalization was cut short is made invalid.
-- UTC unix microseconds; 0 means "take it at once".
ALTER TABLE acme_challenges ADD COLUMN processing_since BIGINT NOT NULL DEFAULT 0;
ALTER TABLE acme_orders ADD COLUMN processing_since BIGINT NOT NULL DEFAULT 0;
CREATE INDEX acme_challenges_processing ON acme_challenges (processing_since) WHERE status = 'processing';
CREATE INDEX acme_orders_processing ON acme_orders (endpoint, processing_since) WHERE status = 'processing';

-- +goose Down
DROP INDEX acme_orders_processing;
DROP INDEX acme_challenges_processing;
ALTER TABLE acme_orders DROP COLUMN processing_since;
ALTER TABLE acme_challenges DROP COLUMN processing_since;
