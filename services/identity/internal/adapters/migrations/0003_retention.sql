-- What the purge task looks for (adapters/purge.go): sessions by expiry and
-- by revocation, and login-failure windows by start, so that each pass
-- reads the rows it deletes rather than every session ever opened.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX login_failures_window ON login_failures (window_start);
