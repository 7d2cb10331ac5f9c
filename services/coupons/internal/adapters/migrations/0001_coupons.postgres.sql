-- Coupons (PostgreSQL). Times are TIMESTAMPTZ and scan back into
-- time.Time. The CHECKs restate the domain's invariants so that no bug in the
-- application can store a coupon that is redeemed by nobody, or a campaign
-- with an empty window.
CREATE TABLE campaigns (
    code            TEXT NOT NULL PRIMARY KEY,
    description     TEXT NOT NULL DEFAULT '',
    kind            BIGINT NOT NULL CHECK (kind IN (1, 2)),
    amount_off      BIGINT NOT NULL CHECK (amount_off >= 0),
    percent_off_bps BIGINT NOT NULL CHECK (percent_off_bps BETWEEN 0 AND 10000),
    minimum_spend   BIGINT NOT NULL CHECK (minimum_spend >= 0),
    currency        TEXT NOT NULL,
    valid_from      TIMESTAMPTZ NOT NULL,
    valid_until     TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    CHECK (valid_from < valid_until)
);

-- One coupon per user and campaign: the per-user single use. A coupon is
-- redeemed by exactly one confirmation (redeemed_jti) or by none.
CREATE TABLE coupons (
    id                TEXT NOT NULL PRIMARY KEY,
    user_id           TEXT NOT NULL,
    campaign_code     TEXT NOT NULL REFERENCES campaigns (code),
    state             BIGINT NOT NULL,
    granted_by        TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL DEFAULT '',
    redeemed_jti      TEXT NOT NULL DEFAULT '',
    redeemed_order_id TEXT NOT NULL DEFAULT '',
    redeemed_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
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
    discount        BIGINT NOT NULL CHECK (discount > 0),
    currency        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL DEFAULT '',
    sealed_token    TEXT NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX confirmations_idempotency ON confirmations (user_id, idempotency_key) WHERE idempotency_key <> '';

-- One row per exercised or voided confirmation: the jti's one-time-use
-- authority, written in the same transaction as the coupon's redemption.
CREATE TABLE exercises (
    jti            TEXT NOT NULL PRIMARY KEY REFERENCES confirmations (jti),
    order_id       TEXT NOT NULL,
    state          BIGINT NOT NULL,
    coupon_id      TEXT NOT NULL,
    redemption_id  TEXT NOT NULL DEFAULT '',
    discount       BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    applied_at     TIMESTAMPTZ,
    compensated_at TIMESTAMPTZ
);
