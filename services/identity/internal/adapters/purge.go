package adapters

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// PurgeBatch is how many sessions (or login-failure rows) one purge
// transaction deletes at most; Purge runs transactions while a batch comes
// back full.
const PurgeBatch = 1000

// Purged counts the rows a Purge deleted, by table.
type Purged struct {
	Sessions, RefreshTokens, LoginFailures int64
}

// Purge deletes what Identity no longer needs at before (the caller passes
// now - retention):
//
//   - the sessions that ended before before, by expiry (SessionLifetime
//     after login) or by revocation (logout, a reused refresh token), with
//     every refresh token of theirs. Refresh tokens go with their session
//     only, never alone: a rotated token presented again must find its
//     session to revoke it for as long as the session could be refreshed.
//     A purged token presented later is unknown, refused like an expired
//     one ("invalid credentials").
//   - the login-failure windows that started before before: a window lasts
//     LockoutWindow (15 minutes).
//
// Users are never purged. It is idempotent and safe from several replicas
// at once: each batch is one short transaction whose sessions are chosen,
// on PostgreSQL, with FOR UPDATE SKIP LOCKED, so concurrent purges take
// disjoint rows; the statements that delete repeat their conditions; on
// SQLite the write lock serialises them. On failure it returns what it
// deleted so far.
func (s *Store) Purge(ctx context.Context, before time.Time) (Purged, error) {
	var total Purged
	before = before.UTC()
	for _, ended := range []string{`expires_at < $1`, `revoked_at < $1`} {
		for {
			var p Purged
			var picked int
			err := s.db.Tx(ctx, func(tx *sql.Tx) error {
				var err error
				p, picked, err = s.purgeSessions(ctx, tx, ended, before)
				return err
			})
			if err != nil {
				return total, fmt.Errorf("identity: purge sessions: %w", err)
			}
			total.Sessions, total.RefreshTokens = total.Sessions+p.Sessions, total.RefreshTokens+p.RefreshTokens
			if picked < PurgeBatch {
				break
			}
		}
	}
	for {
		var n int64
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE window_start < $1 AND username IN (
				SELECT username FROM login_failures WHERE window_start < $1 LIMIT $2`+s.skipLocked()+`)`, before, PurgeBatch)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
		if err != nil {
			return total, fmt.Errorf("identity: purge login failures: %w", err)
		}
		total.LoginFailures += n
		if n < PurgeBatch {
			return total, nil
		}
	}
}

// purgeSessions deletes one batch of the sessions for which ended holds
// at $1, with their refresh tokens, and returns how many sessions it chose.
func (s *Store) purgeSessions(ctx context.Context, tx *sql.Tx, ended string, before time.Time) (Purged, int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM sessions WHERE `+ended+` LIMIT $2`+s.skipLocked(), before, PurgeBatch)
	if err != nil {
		return Purged{}, 0, err
	}
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return Purged{}, 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return Purged{}, 0, err
	}
	var p Purged
	in := marks(2, len(ids))
	args := append([]any{before}, ids...)
	// The session rows are locked (PostgreSQL) or the database is
	// (SQLite): no refresh token is added to them meanwhile.
	res, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE `+ended+
		` AND id IN (`+in+`))`, args...)
	if err == nil {
		p.RefreshTokens, err = res.RowsAffected()
	}
	if err != nil {
		return p, 0, err
	}
	res, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE `+ended+` AND id IN (`+in+`)`, args...)
	if err == nil {
		p.Sessions, err = res.RowsAffected()
	}
	return p, len(ids), err
}

// skipLocked is the locking clause of a purge's SELECT on PostgreSQL.
func (s *Store) skipLocked() string {
	if s.db.Dialect() == sqldb.Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// marks returns "$from, ..., $from+n-1".
func marks(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}
