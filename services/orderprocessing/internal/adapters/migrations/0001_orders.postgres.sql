-- OrderProcessing (PostgreSQL): catalog, checkouts, orders and saga steps.
CREATE TABLE products (
    sku          TEXT NOT NULL PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price_minor  BIGINT NOT NULL CHECK (price_minor >= 0),
    currency     TEXT NOT NULL
);

CREATE TABLE checkouts (
    id              TEXT NOT NULL PRIMARY KEY,
    user_id         TEXT NOT NULL,
    lines           TEXT NOT NULL,
    total_minor     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    status          BIGINT NOT NULL,
    order_id        TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX checkouts_idempotency ON checkouts (user_id, idempotency_key) WHERE idempotency_key <> '';

-- seq orders a user's orders for paging; lease_* let one replica at a time
-- run an order's saga.
CREATE TABLE orders (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    checkout_id     TEXT NOT NULL UNIQUE REFERENCES checkouts (id),
    user_id         TEXT NOT NULL,
    lines           TEXT NOT NULL,
    total_minor     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    status          BIGINT NOT NULL,
    failure_reason  TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL,
    version         BIGINT NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX orders_idempotency ON orders (user_id, idempotency_key);
CREATE INDEX orders_user ON orders (user_id, seq);
CREATE INDEX orders_unfinished ON orders (status, lease_until) WHERE status NOT IN (4, 5);

CREATE TABLE steps (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    capability       TEXT NOT NULL,
    issuer           TEXT NOT NULL,
    stage            BIGINT NOT NULL,
    state            BIGINT NOT NULL,
    settlement_minor BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    jti              TEXT NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    sealed_token     TEXT NOT NULL,
    reference        TEXT NOT NULL DEFAULT '',
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (order_id, capability)
);

INSERT INTO products (sku, name, description, price_minor, currency) VALUES
    ('TEA-GREEN-100G', 'Green tea, 100 g', 'Sencha from Shizuoka, first flush.', 1250, 'EUR'),
    ('TEA-BLACK-250G', 'Black tea, 250 g', 'Assam, malty and strong.', 1890, 'EUR'),
    ('MUG-STONE', 'Stoneware mug', 'Hand-glazed, 350 ml.', 2400, 'EUR'),
    ('KETTLE-GOOSE', 'Gooseneck kettle', 'Stainless steel, 1 l, for precise pouring.', 5900, 'EUR'),
    ('INFUSER-STEEL', 'Tea infuser', 'Fine mesh basket that fits most mugs.', 790, 'EUR');
