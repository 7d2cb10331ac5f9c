-- Payments (PostgreSQL). Times are TIMESTAMPTZ and scan back into
-- time.Time. No column holds a card number: a card is its brand, last four
-- digits and the processor's opaque reference.
CREATE TABLE payment_methods (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL,
    brand           TEXT NOT NULL,
    last4           TEXT NOT NULL CHECK (length(last4) = 4),
    expiry_month    BIGINT NOT NULL CHECK (expiry_month BETWEEN 1 AND 12),
    expiry_year     BIGINT NOT NULL,
    label           TEXT NOT NULL DEFAULT '',
    processor_ref   TEXT NOT NULL,
    idempotency_key TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_methods_user ON payment_methods (user_id, seq);
CREATE UNIQUE INDEX payment_methods_idempotency ON payment_methods (user_id, idempotency_key) WHERE idempotency_key <> '';

-- One row per confirmation token issued, with the authorization hold that
-- backs it.
CREATE TABLE confirmations (
    jti              TEXT NOT NULL PRIMARY KEY,
    user_id          TEXT NOT NULL,
    checkout_id      TEXT NOT NULL,
    method_id        TEXT NOT NULL REFERENCES payment_methods (id),
    amount_minor     BIGINT NOT NULL CHECK (amount_minor > 0),
    currency         TEXT NOT NULL,
    authorization_id TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL DEFAULT '',
    sealed_token     TEXT NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX confirmations_idempotency ON confirmations (user_id, idempotency_key) WHERE idempotency_key <> '';

-- One row per exercised or voided confirmation: the jti's one-time-use
-- authority, written in the same transaction as the capture it records.
CREATE TABLE exercises (
    jti            TEXT NOT NULL PRIMARY KEY REFERENCES confirmations (jti),
    order_id       TEXT NOT NULL,
    state          BIGINT NOT NULL,
    capture_id     TEXT NOT NULL DEFAULT '',
    refund_id      TEXT NOT NULL DEFAULT '',
    amount_minor   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    applied_at     TIMESTAMPTZ,
    compensated_at TIMESTAMPTZ
);
