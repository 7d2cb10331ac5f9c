-- A Login's idempotency key opens one session: concurrent retries of one
-- Login insert under a unique index, and the losers replay the winner's
-- result instead of opening sessions of their own. A session gives its key
-- up (login_key = '') once its result can no longer be replayed, so that
-- the key opens a new session after the retry window. Sessions that the
-- key opened twice before keep it only on the newest, the one Login replayed.
UPDATE sessions SET login_key = '' WHERE login_key <> '' AND EXISTS (
    SELECT 1 FROM sessions newer
    WHERE newer.user_id = sessions.user_id AND newer.login_key = sessions.login_key
      AND (newer.created_at > sessions.created_at OR (newer.created_at = sessions.created_at AND newer.id > sessions.id)));
DROP INDEX sessions_login_key;
CREATE UNIQUE INDEX sessions_login_key ON sessions (user_id, login_key) WHERE login_key <> '';
