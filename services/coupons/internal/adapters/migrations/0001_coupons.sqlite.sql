-- Coupons (SQLite). Times are TIMESTAMP so the driver scans them back into
-- time.Time. The CHECKs restate the domain's invariants so that no bug in the
-- application can store a coupon that is redeemed by nobody, or a campaign
-- with an empty window.
CREATE TABLE campaigns (
    code            TEXT NOT NULL PRIMARY KEY,
    description     TEXT NOT NULL DEFAULT '',
    kind            INTEGER NOT NULL CHECK (kind IN (1, 2)),
    amount_off      INTEGER NOT NULL CHECK (amount_off >= 0),
    percent_off_bps INTEGER NOT NULL CHECK (percent_off_bps BETWEEN 0 AND 10000),
    minimum_spend   INTEGER NOT NULL CHECK (minimum_spend >= 0),
    currency        TEXT NOT NULL,
    valid_from      TIMESTAMP NOT NULL,
    valid_until     TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    CHECK (valid_from < valid_until)
);

-- One coupon per user and campaign: the per-user single use. A coupon is
-- redeemed by exactly one confirmation (redeemed_jti) or by none.
CREATE TABLE coupons (
    id                TEXT NOT NULL PRIMARY KEY,
    user_id           TEXT NOT NULL,
    campaign_code     TEXT NOT NULL REFERENCES campaigns (code),
    state             INTEGER NOT NULL,
    granted_by        TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL DEFAULT '',
    redeemed_jti      TEXT NOT NULL DEFAULT '',
    redeemed_order_id TEXT NOT NULL DEFAULT '',
    redeemed_at       TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    UNIQUE (user_id, campaign_code),
    CHECK ((state = 1 AND redeemed_jti = '') OR (state = 2 AND redeemed_jti <> ''))
);
CREATE UNIQUE INDEX coupons_idempotency ON coupons (granted_by, user_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE confirmations (
    jti             TEXT NOT NULL PRIMARY KEY,
    user_id         TEXT NOT NULL,
    checkout_id     TEXT NOT NULL,
    coupon_id       TEXT NOT NULL REFERENCES coupons (id),
    code            TEXT NOT NULL,
    discount        INTEGER NOT NULL CHECK (discount > 0),
    currency        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL DEFAULT '',
    sealed_token    TEXT NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX confirmations_idempotency ON confirmations (user_id, idempotency_key) WHERE idempotency_key <> '';

-- One row per exercised or voided confirmation: the jti's one-time-use
-- authority, written in the same transaction as the coupon's redemption.
CREATE TABLE exercises (
    jti            TEXT NOT NULL PRIMARY KEY REFERENCES confirmations (jti),
    order_id       TEXT NOT NULL,
    state          INTEGER NOT NULL,
    coupon_id      TEXT NOT NULL,
    redemption_id  TEXT NOT NULL DEFAULT '',
    discount       INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    applied_at     TIMESTAMP,
    compensated_at TIMESTAMP
);
