-- NEEDS_OPERATOR (status 6) is final: an issuer refused for good to
-- compensate a step, and only an operator moves the order on (tokenrelay
-- orders retry / resolve). The saga's recovery scan must skip it, so the
-- partial index of unfinished orders is recreated without it; a second
-- partial index lists the orders waiting for an operator. operator_note is
-- what the operator wrote when resolving an order by hand.
ALTER TABLE orders ADD COLUMN operator_note TEXT NOT NULL DEFAULT '';
DROP INDEX orders_unfinished;
CREATE INDEX orders_unfinished ON orders (status, lease_until) WHERE status NOT IN (4, 5, 6);
CREATE INDEX orders_needing_operator ON orders (seq) WHERE status = 6;
