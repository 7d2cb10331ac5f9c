-- The token audit trail (package audit): append-only events, one hash chain
-- per service. Times are Unix milliseconds, so that both dialects round-trip
-- them exactly and the chain's hashes can be recomputed from the rows.
CREATE TABLE audit_events (
    service     TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    action      TEXT   NOT NULL,
    iss         TEXT   NOT NULL,
    jti         TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    checkout_id TEXT   NOT NULL,
    order_id    TEXT   NOT NULL,
    txn         TEXT   NOT NULL,
    refused_check TEXT NOT NULL,
    exp_ms      BIGINT NOT NULL,
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL,
    PRIMARY KEY (service, seq)
);
CREATE INDEX audit_events_jti ON audit_events (iss, jti);
CREATE INDEX audit_events_order ON audit_events (order_id);
CREATE INDEX audit_events_checkout ON audit_events (checkout_id);
CREATE INDEX audit_events_txn ON audit_events (txn);
CREATE INDEX audit_events_at ON audit_events (service, at_ms);
-- The head of each service's chain: the last sequence number and hash
-- appended, and the anchor the retention left (the hash of the last event
-- purged, from which the events kept are verified).
CREATE TABLE audit_heads (
    service     TEXT   PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT   NOT NULL,
    anchor_seq  BIGINT NOT NULL,
    anchor_hash TEXT   NOT NULL
);
