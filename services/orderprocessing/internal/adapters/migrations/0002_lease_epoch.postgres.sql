-- lease_epoch is the fencing token of an order's lease: a claim that takes
-- the order from another owner increments it, and every saga write checks it,
-- so a replica that paused past its lease cannot write over its successor.
ALTER TABLE orders ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
