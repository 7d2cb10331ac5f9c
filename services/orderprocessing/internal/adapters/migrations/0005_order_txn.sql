-- The transaction the saga continues (issue 18): the txn of the request that
-- placed the order (its subject is user_id) and that request's W3C
-- traceparent, so that every Exercise and Compensate, hours later and on
-- any replica, carries a transaction token of the same txn and its spans
-- link to the request's. Ids only, no token. Orders placed before keep ''.
ALTER TABLE orders ADD COLUMN txn TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
