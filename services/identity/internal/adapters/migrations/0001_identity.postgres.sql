-- Identity (postgres). Passwords are argon2id PHC strings; refresh tokens are
-- stored as their SHA-256 only. The sealed_* columns hold an encrypted
-- (vault) copy of a Login or Refresh result for the 60-second retry window
-- and are emptied after it.
CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    scopes        TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL
);

-- A session is a refresh-token family: revoking it ends every token of it.
CREATE TABLE sessions (
    id            TEXT NOT NULL PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT NOT NULL DEFAULT '',
    login_key     TEXT NOT NULL DEFAULT '',
    sealed_login  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_login_key ON sessions (user_id, login_key, created_at) WHERE login_key <> '';
CREATE INDEX sessions_sealed ON sessions (created_at) WHERE sealed_login <> '';

CREATE TABLE refresh_tokens (
    hash            TEXT NOT NULL PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions (id),
    issued_at       TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    idempotency_key TEXT NOT NULL DEFAULT '',
    sealed_result   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (used_at) WHERE sealed_result <> '';

-- Failed logins per user name in a fixed window (see domain.LockoutWindow).
CREATE TABLE login_failures (
    username     TEXT NOT NULL PRIMARY KEY,
    window_start TIMESTAMPTZ NOT NULL,
    failures     BIGINT NOT NULL
);
