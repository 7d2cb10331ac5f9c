-- Tokenize is idempotent by key, like Authorize: concurrent retries of one
-- AddPaymentMethod hand the processor one card. The card's brand and last
-- four digits (never its number) tell a retry from a key reused for another
-- card. Cards tokenized before have no key ('').
ALTER TABLE sim_cards ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';
ALTER TABLE sim_cards ADD COLUMN brand TEXT NOT NULL DEFAULT '';
ALTER TABLE sim_cards ADD COLUMN last4 TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX sim_cards_idempotency ON sim_cards (idempotency_key) WHERE idempotency_key <> '';
