-- Every index an event has a row in is one more b-tree page written by the
-- transaction that appends it (the trail's cost per checkout,
-- BENCHMARKS.md). The retention finds its cut by walking the chain's
-- primary key (service, seq), events being appended in about the order of
-- their times: the index by time goes. Only checkout tokens' events are
-- looked up by checkout (an order's timeline goes through its
-- confirmation tokens' jtis, then adds its checkout's checkout tokens):
-- the index by checkout keeps those alone. The others index only the
-- events that have the id (an empty id names nothing, and the reads ask
-- for none): an issued event has no order yet, an event caused by no
-- request (a purge) no txn, a refusal of untrusted claims no jti.
DROP INDEX IF EXISTS audit_events_checkout;
DROP INDEX IF EXISTS audit_events_at;
DROP INDEX IF EXISTS audit_events_jti;
DROP INDEX IF EXISTS audit_events_order;
DROP INDEX IF EXISTS audit_events_txn;
CREATE INDEX audit_events_jti ON audit_events (iss, jti) WHERE jti <> '';
CREATE INDEX audit_events_order ON audit_events (order_id) WHERE order_id <> '';
CREATE INDEX audit_events_txn ON audit_events (txn) WHERE txn <> '';
CREATE INDEX audit_events_checkout_tokens ON audit_events (checkout_id) WHERE kind = 'checkout';
