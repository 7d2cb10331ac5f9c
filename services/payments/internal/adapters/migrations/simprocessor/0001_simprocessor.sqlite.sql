-- The simulated processor (SQLite), in a database of its own because it
-- stands for a remote system. It keeps what a processor would: the cards it
-- was handed, here only by reference and test behaviour (never the number),
-- and its holds, so that a restart loses none.
CREATE TABLE sim_cards (
    ref        TEXT NOT NULL PRIMARY KEY,
    behaviour  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- A hold's state moves authorized -> captured -> refunded, or authorized ->
-- voided, each by one conditional UPDATE, so that concurrent calls move it
-- once. behaviour is copied from the card so those updates need no join.
CREATE TABLE sim_holds (
    id              TEXT NOT NULL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    card_ref        TEXT NOT NULL REFERENCES sim_cards (ref),
    behaviour       TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    state           TEXT NOT NULL,
    capture_id      TEXT NOT NULL DEFAULT '',
    refund_id       TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMP NOT NULL
);
