-- One row per consumed token, written in the same transaction as the effect
-- the token authorizes. expires_at is the token's exp in Unix seconds (an
-- integer compares the same on every dialect); Prune deletes by it.
CREATE TABLE consumed_jtis (
	iss TEXT NOT NULL,
	jti TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (iss, jti)
);
CREATE INDEX consumed_jtis_expires_at ON consumed_jtis (expires_at);
