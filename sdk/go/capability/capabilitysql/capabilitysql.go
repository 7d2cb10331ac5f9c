// Package capabilitysql keeps, on SQL (SQLite or PostgreSQL through sqldb),
// the two records every domain keeps of its confirmation tokens:
//
//   - its confirmations table: one row per token issued, keyed by jti and
//     unique per user and idempotency key (where the key is not empty), with
//     the token sealed under its jti in the column sealed_token;
//   - its exercises table: one row per jti, the one-time-use authority, that
//     an exercise or a compensation claims before it acts.
//
// A domain describes its tables (columns, values, scan) and gets the
// statements every domain shares: read by jti or key, save once per key,
// claim once per jti; the exercise protocol on them ([Ledger]: exercise
// once, compensate once, void, each in one transaction with the domain's
// own effect); the list of its sealed columns ([Sealed]); and the purge
// of the records of tokens nothing can use any more ([Purge]: expired, their
// exercise final, the retention passed since both), which every domain runs
// from its purge task.
//
// Its rule: it is a store helper, imported only by a domain's
// internal/adapters (and its face, for the operator's list of sealed
// columns). It speaks
// SQL through sqldb and knows no Connect and no generated code; the domain's
// own columns, records and sentinels come in as values.
package capabilitysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"
)

// Scanner is a *sql.Row or *sql.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Querier runs statements on the pool or in a transaction: sqldb.Cached.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var _ Querier = sqldb.Cached{}

// Table describes one of a domain's two tables.
type Table[T any] struct {
	// Columns lists the table's columns, comma-separated, in the order of
	// Values and Scan.
	Columns string
	// Values returns the values of Columns for v, for an insert.
	Values func(v T) []any
	// Scan reads Columns from a row; for sql.ErrNoRows it returns an error
	// wrapping capability.ErrNotFound (every domain's ErrNotFound is that
	// one).
	Scan func(row Scanner) (T, error)
}

// Confirmations is a domain's confirmations table. Its key columns are jti,
// user_id and idempotency_key.
type Confirmations[C any] struct {
	Table[C]
	// UserKey returns the user and idempotency key of c.
	UserKey func(c C) (userID, key string)
}

// ByJTI returns the confirmation of the token with a jti.
func (t Confirmations[C]) ByJTI(ctx context.Context, q Querier, jti string) (C, error) {
	return t.Scan(q.QueryRowContext(ctx, `SELECT `+t.Columns+` FROM confirmations WHERE jti = $1`, jti))
}

// ByKey returns the user's confirmation saved with a (non-empty)
// idempotency key.
func (t Confirmations[C]) ByKey(ctx context.Context, q Querier, userID, key string) (C, error) {
	return t.Scan(q.QueryRowContext(ctx, `SELECT `+t.Columns+
		` FROM confirmations WHERE user_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''`, userID, key))
}

// Save stores c unless the user already has a confirmation with its
// idempotency key; then it returns that one, and created is false. Whether
// the two are the same request is the caller's to judge. What it returns is
// the row as stored, the same that a retry reads.
func (t Confirmations[C]) Save(ctx context.Context, q Querier, c C) (stored C, created bool, err error) {
	user, key := t.UserKey(c)
	return insertOnce(ctx, q, `INSERT INTO confirmations`, t.Table, c,
		`ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key <> '' DO NOTHING`,
		func() (C, error) { return t.ByKey(ctx, q, user, key) })
}

// Exercises is a domain's exercises table. Its key column is jti.
type Exercises[X any] struct{ Table[X] }

// ByJTI returns the exercise of the token with a jti.
func (t Exercises[X]) ByJTI(ctx context.Context, q Querier, jti string) (X, error) {
	return t.Scan(q.QueryRowContext(ctx, `SELECT `+t.Columns+` FROM exercises WHERE jti = $1`, jti))
}

// Claim inserts x, the exercise of the token with a jti, unless one exists,
// and returns it as stored. It returns inserted=false and the existing row
// when another transaction got there first; on PostgreSQL the insert waits
// for a concurrent one to commit, so exactly one of any number of
// concurrent claims inserts.
func (t Exercises[X]) Claim(ctx context.Context, q Querier, jti string, x X) (X, bool, error) {
	return insertOnce(ctx, q, `INSERT INTO exercises`, t.Table, x, `ON CONFLICT (jti) DO NOTHING`,
		func() (X, error) { return t.ByJTI(ctx, q, jti) })
}

// insertOnce runs insert (columns) VALUES (...) onConflict RETURNING
// columns for v, and reads the row that stands with existing when nothing
// was inserted. Either way it returns the row as the database stored it
// (PostgreSQL keeps times to the microsecond), so that the call that
// inserts answers exactly what every retry reads back.
func insertOnce[T any](ctx context.Context, q Querier, insert string, t Table[T], v T, onConflict string,
	existing func() (T, error)) (T, bool, error) {
	args := t.Values(v)
	marks := make([]string, len(args))
	for i := range marks {
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	row := &noRows{row: q.QueryRowContext(ctx, insert+` (`+t.Columns+`) VALUES (`+strings.Join(marks, ", ")+`) `+
		onConflict+` RETURNING `+t.Columns, args...)}
	stored, err := t.Scan(row)
	switch {
	case row.none: // the conflict: another row stands
		prev, err := existing()
		return prev, false, err
	case err != nil:
		var zero T
		return zero, false, err
	}
	return stored, true, nil
}

// noRows is a row that remembers whether it had none (sql.ErrNoRows), which
// a Table's Scan reports as its domain's own ErrNotFound.
type noRows struct {
	row  *sql.Row
	none bool
}

func (r *noRows) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	r.none = errors.Is(err, sql.ErrNoRows)
	return err
}

// NullTime is t for a nullable column: NULL for the zero time, else UTC.
func NullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t.UTC(), Valid: !t.IsZero()}
}

// TimeOf is the inverse of NullTime: NULL is the zero time.
func TimeOf(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// Sealed are the columns of a domain that hold vault records: the
// confirmation tokens kept for idempotent retries of Confirm, sealed under
// their jti as record id (see capability.Confirmer). A domain exports them
// as its own Sealed for the operator's vault commands; a domain with
// another sealed column appends it there, or key rotation leaves it behind.
//
// Re-encrypting them is safe while the domain runs (see
// vaultsql.Columns.Reencrypt): each row is rewritten in a short transaction
// of its own, only if it still holds the ciphertext that was read.
var Sealed = vaultsql.Columns{{
	Table: "confirmations", Name: "sealed_token", Key: []string{"jti"},
	RecordID: func(k []string) string { return k[0] },
}}
