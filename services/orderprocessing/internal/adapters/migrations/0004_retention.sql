-- What the purge task looks for (adapters/purge.go), so that each pass
-- reads the rows it purges rather than the whole history:
--   steps_sealed: the steps that still hold a sealed token (those of recent
--     or unfinished orders), whose token is dropped once the order is
--     COMPLETED or FAILED past the sealed-token retention;
--   orders_finished: COMPLETED and FAILED orders by their last update, for
--     the optional order retention;
--   checkouts_unplaced: checkouts no order was placed for, by expiry.
CREATE INDEX steps_sealed ON steps (order_id) WHERE sealed_token <> '';
CREATE INDEX orders_finished ON orders (updated_at) WHERE status IN (4, 5);
CREATE INDEX checkouts_unplaced ON checkouts (expires_at) WHERE status <> 2;
