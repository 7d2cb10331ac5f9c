// Package adapters holds the Identity store on SQL: SQLite (the embedded
// default) and PostgreSQL through one set of statements, with
// dialect-specific DDL in migrations/.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationSet names Identity's migrations in a shared schema_migrations
// table.
const MigrationSet = "identity"

// Store is the SQL implementation of domain.Repository.
type Store struct {
	db *sqldb.DB
}

var _ domain.Repository = (*Store)(nil)

// NewStore migrates db to Identity's schema and returns the store.
func NewStore(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := sqldb.MigrateDir(ctx, db, migrations, "migrations", MigrationSet); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

type scanner interface{ Scan(...any) error }

func utc(t time.Time) time.Time { return t.UTC() }

const userColumns = `id, username, display_name, password_hash, scopes, created_at`

func scanUser(row scanner) (domain.User, error) {
	var u domain.User
	var scopes string
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &u.PasswordHash, &scopes, &u.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return u, domain.ErrNotFound
	}
	u.Scopes = strings.Fields(scopes)
	u.CreatedAt = utc(u.CreatedAt)
	return u, err
}

// CreateUser implements domain.Repository.
func (s *Store) CreateUser(ctx context.Context, u domain.User) (domain.User, bool, error) {
	res, err := s.db.Cached(nil).ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (username) DO NOTHING`,
		u.ID, u.Username, u.DisplayName, u.PasswordHash, strings.Join(u.Scopes, " "), u.CreatedAt.UTC())
	if err != nil {
		return domain.User{}, false, fmt.Errorf("identity: create user: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return domain.User{}, false, fmt.Errorf("identity: create user: %w", err)
	}
	stored, err := s.UserByName(ctx, u.Username)
	return stored, n == 1, err
}

// UserByName implements domain.Repository.
func (s *Store) UserByName(ctx context.Context, username string) (domain.User, error) {
	return scanUser(s.db.Cached(nil).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
}

// UserByID implements domain.Repository.
func (s *Store) UserByID(ctx context.Context, id string) (domain.User, error) {
	return scanUser(s.db.Cached(nil).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
}

const sessionColumns = `s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.revoke_reason, s.login_key, s.sealed_login`

func scanSession(dst *domain.Session, revoked *sql.NullTime) []any {
	return []any{&dst.ID, &dst.UserID, &dst.CreatedAt, &dst.ExpiresAt, revoked, &dst.RevokeReason, &dst.LoginKey, &dst.SealedLogin}
}

func fixSession(s *domain.Session, revoked sql.NullTime) {
	s.CreatedAt, s.ExpiresAt = utc(s.CreatedAt), utc(s.ExpiresAt)
	if revoked.Valid {
		s.RevokedAt = utc(revoked.Time)
	}
}

const tokenColumns = `t.hash, t.session_id, t.issued_at, t.expires_at, t.used_at, t.idempotency_key, t.sealed_result`

func scanToken(dst *domain.RefreshToken, used *sql.NullTime) []any {
	return []any{&dst.Hash, &dst.SessionID, &dst.IssuedAt, &dst.ExpiresAt, used, &dst.IdempotencyKey, &dst.SealedResult}
}

func fixToken(t *domain.RefreshToken, used sql.NullTime) {
	t.IssuedAt, t.ExpiresAt = utc(t.IssuedAt), utc(t.ExpiresAt)
	if used.Valid {
		t.UsedAt = utc(used.Time)
	}
}

func insertToken(ctx context.Context, tx *sql.Tx, t domain.RefreshToken) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.SessionID, t.IssuedAt.UTC(), t.ExpiresAt.UTC())
	return err
}

// CreateSession implements domain.Repository. The unique index on (user_id,
// login_key) is the authority: of concurrent Logins with one key, one
// inserts; on PostgreSQL the others' inserts wait for it to commit and then
// do nothing, on SQLite they run after it; either way they read its session.
func (s *Store) CreateSession(ctx context.Context, ses domain.Session, first domain.RefreshToken, since time.Time) (domain.Session, bool, error) {
	var (
		stored  domain.Session
		created bool
	)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if ses.LoginKey != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE sessions SET login_key = ''
				WHERE user_id = $1 AND login_key = $2 AND (created_at < $3 OR sealed_login = '')`,
				ses.UserID, ses.LoginKey, since.UTC()); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, user_id, created_at, expires_at, login_key, sealed_login)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, login_key) WHERE login_key <> '' DO NOTHING`,
			ses.ID, ses.UserID, ses.CreatedAt.UTC(), ses.ExpiresAt.UTC(), ses.LoginKey, ses.SealedLogin)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		switch {
		case err != nil:
			return err
		case n == 0: // a concurrent Login with the key opened the session
			stored, created = domain.Session{}, false
			var revoked sql.NullTime
			err := tx.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions s WHERE s.user_id = $1 AND s.login_key = $2`,
				ses.UserID, ses.LoginKey).Scan(scanSession(&stored, &revoked)...)
			fixSession(&stored, revoked)
			return err
		}
		first.SessionID = ses.ID
		stored, created = ses, true
		return insertToken(ctx, tx, first)
	})
	if err != nil {
		return domain.Session{}, false, fmt.Errorf("identity: create session: %w", err)
	}
	return stored, created, nil
}

// SessionByLoginKey implements domain.Repository.
func (s *Store) SessionByLoginKey(ctx context.Context, userID, key string, since time.Time) (domain.Session, error) {
	var ses domain.Session
	var revoked sql.NullTime
	err := s.db.Cached(nil).QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions s
		WHERE s.user_id = $1 AND s.login_key = $2 AND s.created_at >= $3 ORDER BY s.created_at DESC LIMIT 1`,
		userID, key, since.UTC()).Scan(scanSession(&ses, &revoked)...)
	if errors.Is(err, sql.ErrNoRows) {
		return ses, domain.ErrNotFound
	}
	if err != nil {
		return ses, fmt.Errorf("identity: session by login key: %w", err)
	}
	fixSession(&ses, revoked)
	return ses, nil
}

// RefreshToken implements domain.Repository.
func (s *Store) RefreshToken(ctx context.Context, hash string) (domain.RefreshToken, domain.Session, error) {
	return refreshToken(ctx, s.db.SQL(), hash)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func refreshToken(ctx context.Context, q queryer, hash string) (domain.RefreshToken, domain.Session, error) {
	var t domain.RefreshToken
	var ses domain.Session
	var used, revoked sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT `+tokenColumns+`, `+sessionColumns+`
		FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1`, hash).
		Scan(append(scanToken(&t, &used), scanSession(&ses, &revoked)...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ses, domain.ErrNotFound
	}
	if err != nil {
		return t, ses, fmt.Errorf("identity: refresh token: %w", err)
	}
	fixToken(&t, used)
	fixSession(&ses, revoked)
	return t, ses, nil
}

// Rotate implements domain.Repository. The conditional UPDATE is the
// authority: of two concurrent rotations of one token exactly one matches
// "used_at IS NULL" (PostgreSQL re-checks the row after the winner commits;
// SQLite serialises writers), so a token is rotated at most once.
func (s *Store) Rotate(ctx context.Context, oldHash string, next domain.RefreshToken, key, sealed string, now time.Time) (domain.RefreshToken, error) {
	var old domain.RefreshToken
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var sessionID string
		err := tx.QueryRowContext(ctx, `UPDATE refresh_tokens SET used_at = $2, idempotency_key = $3, sealed_result = $4
			WHERE hash = $1 AND used_at IS NULL RETURNING session_id`,
			oldHash, now.UTC(), key, sealed).Scan(&sessionID)
		if errors.Is(err, sql.ErrNoRows) {
			old, _, err = refreshToken(ctx, tx, oldHash)
			if err != nil {
				return err
			}
			return domain.ErrReused
		}
		if err != nil {
			return err
		}
		next.SessionID = sessionID
		return insertToken(ctx, tx, next)
	})
	switch {
	case errors.Is(err, domain.ErrReused), errors.Is(err, domain.ErrNotFound):
		return old, err
	case err != nil:
		return old, fmt.Errorf("identity: rotate: %w", err)
	}
	return domain.RefreshToken{}, nil
}

// RevokeSession implements domain.Repository.
func (s *Store) RevokeSession(ctx context.Context, sessionID, reason string, now time.Time) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = $2, revoke_reason = $3, sealed_login = ''
			WHERE id = $1 AND revoked_at IS NULL`, sessionID, now.UTC(), reason); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET sealed_result = '' WHERE session_id = $1 AND sealed_result <> ''`, sessionID)
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: revoke session: %w", err)
	}
	return nil
}

// PurgeSealed implements domain.Repository.
func (s *Store) PurgeSealed(ctx context.Context, before time.Time) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET sealed_result = '' WHERE sealed_result <> '' AND used_at < $1`, before.UTC()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET sealed_login = '' WHERE sealed_login <> '' AND created_at < $1`, before.UTC())
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: purge sealed results: %w", err)
	}
	return nil
}

// LoginFailures implements domain.Repository.
func (s *Store) LoginFailures(ctx context.Context, username string, since time.Time) (int, error) {
	var n int
	err := s.db.Cached(nil).QueryRowContext(ctx, `SELECT failures FROM login_failures WHERE username = $1 AND window_start > $2`,
		username, since.UTC()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("identity: login failures: %w", err)
	}
	return n, nil
}

// RecordLoginFailure implements domain.Repository. One upsert: both
// dialects evaluate every SET expression against the old row.
func (s *Store) RecordLoginFailure(ctx context.Context, username string, now, since time.Time) (int, error) {
	var n int
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO login_failures (username, window_start, failures) VALUES ($1, $2, 1)
			ON CONFLICT (username) DO UPDATE SET
				failures = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END,
				window_start = CASE WHEN login_failures.window_start <= $3 THEN excluded.window_start ELSE login_failures.window_start END
			RETURNING failures`, username, now.UTC(), since.UTC()).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("identity: record login failure: %w", err)
	}
	return n, nil
}

// ResetLoginFailures implements domain.Repository.
func (s *Store) ResetLoginFailures(ctx context.Context, username string) error {
	if _, err := s.db.Cached(nil).ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1`, username); err != nil {
		return fmt.Errorf("identity: reset login failures: %w", err)
	}
	return nil
}
