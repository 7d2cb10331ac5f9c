-- Points ledger (SQLite). Times are TIMESTAMP so the driver scans them back
-- into time.Time. The balance is a materialised sum of the ledger, kept in the
-- same transaction as every entry; the CHECK makes a negative balance
-- impossible whatever the application does.
CREATE TABLE balances (
    user_id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (balance >= 0)
);

CREATE TABLE entries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL,
    kind            INTEGER NOT NULL,
    delta           INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL,
    order_id        TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX entries_user ON entries (user_id, seq);
CREATE UNIQUE INDEX entries_idempotency ON entries (user_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE confirmations (
    jti             TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    checkout_id     TEXT NOT NULL,
    points          INTEGER NOT NULL CHECK (points > 0),
    currency        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL DEFAULT '',
    sealed_token    TEXT NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX confirmations_idempotency ON confirmations (user_id, idempotency_key) WHERE idempotency_key <> '';

-- One row per exercised or voided confirmation: the jti's one-time-use
-- authority, written in the same transaction as the ledger entry.
CREATE TABLE exercises (
    jti            TEXT PRIMARY KEY REFERENCES confirmations (jti),
    order_id       TEXT NOT NULL,
    state          INTEGER NOT NULL,
    entry_id       TEXT NOT NULL DEFAULT '',
    points         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    applied_at     TIMESTAMP,
    compensated_at TIMESTAMP
);
