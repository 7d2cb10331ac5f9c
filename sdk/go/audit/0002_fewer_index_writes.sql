-- Every index an event has a row in is one more b-tree page written by the
-- transaction that appends it (the trail's cost per checkout,
-- BENCHMARKS.md). No read looks events up by checkout (an order's timeline
-- goes through its tokens' jtis), and the retention finds its cut by
-- walking the chain's primary key (service, seq), events being appended in
-- about the order of their times: those two indexes go. The others index
-- only the events that have the id (an empty id names nothing, and the
-- reads ask for none): an issued event has no order yet, an event caused
-- by no request (a purge) no txn, a refusal of untrusted claims no jti.
DROP INDEX IF EXISTS audit_events_checkout;
DROP INDEX IF EXISTS audit_events_at;
DROP INDEX IF EXISTS audit_events_jti;
DROP INDEX IF EXISTS audit_events_order;
DROP INDEX IF EXISTS audit_events_txn;
CREATE INDEX audit_events_jti ON audit_events (iss, jti) WHERE jti <> '';
CREATE INDEX audit_events_order ON audit_events (order_id) WHERE order_id <> '';
CREATE INDEX audit_events_txn ON audit_events (txn) WHERE txn <> '';
