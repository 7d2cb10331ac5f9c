-- Each index is one more b-tree written by every append (the trail's cost
-- per checkout, BENCHMARKS.md). No read looks events up by checkout (an
-- order's timeline goes through its tokens' jtis), and the retention finds
-- its cut by walking the chain's primary key (service, seq), events being
-- appended in about the order of their times.
DROP INDEX IF EXISTS audit_events_checkout;
DROP INDEX IF EXISTS audit_events_at;
