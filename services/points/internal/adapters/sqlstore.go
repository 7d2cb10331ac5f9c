// Package adapters holds the Points store on SQL: SQLite (the embedded
// default) and PostgreSQL through one set of statements, with
// dialect-specific DDL in migrations/.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/points/internal/domain"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationSet names Points' migrations in a shared schema_migrations table.
const MigrationSet = "points"

// Store is the SQL implementation of domain.Repository.
type Store struct {
	db     *sqldb.DB
	ledger capabilitysql.Ledger[domain.Confirmation, domain.Exercise] // ledger, audited
}

var _ domain.Repository = (*Store)(nil)

// NewStore migrates db to Points' schema and returns the store.
func NewStore(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := sqldb.MigrateDir(ctx, db, migrations, "migrations", MigrationSet); err != nil {
		return nil, err
	}
	l, err := ledger.Audited(ctx, db, Issuer, authn.TxnFrom, func(c domain.Confirmation) audit.Event {
		return audit.Event{Issuer: Issuer, JTI: c.JTI, Kind: token.Confirmation.Name(), Subject: c.UserID,
			CheckoutID: c.CheckoutID, ExpiresAt: c.ExpiresAt}
	})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, ledger: l}, nil
}

// Issuer is the domain's issuer name, the iss of its confirmation tokens
// and the service of its audit events.
const Issuer = "points"

const entryColumns = `id, user_id, kind, delta, balance_after, order_id, reason, idempotency_key, created_at`

func scanEntry(row capabilitysql.Scanner) (domain.Entry, error) {
	var e domain.Entry
	err := row.Scan(&e.ID, &e.UserID, &e.Kind, &e.Delta, &e.BalanceAfter, &e.OrderID, &e.Reason, &e.IdempotencyKey, &e.CreatedAt)
	e.CreatedAt = e.CreatedAt.UTC()
	return e, err
}

// Balance implements domain.Repository.
func (s *Store) Balance(ctx context.Context, userID string, recent int) (int64, []domain.Entry, error) {
	var balance int64
	var entries []domain.Entry
	err := s.db.Cached(nil).QueryRowContext(ctx, `SELECT balance FROM balances WHERE user_id = $1`, userID).Scan(&balance)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("points: balance: %w", err)
	}
	if recent == 0 {
		return balance, nil, nil
	}
	rows, err := s.db.Cached(nil).QueryContext(ctx,
		`SELECT `+entryColumns+` FROM entries WHERE user_id = $1 ORDER BY seq DESC LIMIT $2`, userID, recent)
	if err != nil {
		return 0, nil, fmt.Errorf("points: entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return 0, nil, fmt.Errorf("points: entries: %w", err)
		}
		entries = append(entries, e)
	}
	return balance, entries, rows.Err()
}

// addBalance changes a user's balance by delta and returns the new balance.
// A debit that would go below zero changes nothing and returns
// ErrInsufficientPoints: the conditional update is atomic on both dialects.
func addBalance(ctx context.Context, tx sqldb.Cached, userID string, delta int64) (int64, error) {
	var balance int64
	var err error
	if delta >= 0 {
		err = tx.QueryRowContext(ctx, `INSERT INTO balances (user_id, balance) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET balance = balances.balance + excluded.balance
			RETURNING balance`, userID, delta).Scan(&balance)
	} else {
		err = tx.QueryRowContext(ctx, `UPDATE balances SET balance = balance - $1
			WHERE user_id = $2 AND balance >= $1 RETURNING balance`, -delta, userID).Scan(&balance)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, domain.ErrInsufficientPoints
		}
	}
	return balance, err
}

// appendEntry writes e with the balance after it, and returns it as stored
// (PostgreSQL keeps times to the microsecond), what a retry reads back.
func appendEntry(ctx context.Context, tx sqldb.Cached, e domain.Entry) (domain.Entry, error) {
	return scanEntry(tx.QueryRowContext(ctx, `INSERT INTO entries (`+entryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING `+entryColumns,
		e.ID, e.UserID, e.Kind, e.Delta, e.BalanceAfter, e.OrderID, e.Reason, e.IdempotencyKey, e.CreatedAt.UTC()))
}

// Grant implements domain.Repository.
func (s *Store) Grant(ctx context.Context, e domain.Entry) (domain.Entry, error) {
	e.ID = ids.New("pte")
	var out domain.Entry
	err := s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := s.db.Cached(sqlTx) // statements prepared once, run in sqlTx
		if e.IdempotencyKey != "" {
			prev, err := scanEntry(tx.QueryRowContext(ctx,
				`SELECT `+entryColumns+` FROM entries WHERE user_id = $1 AND idempotency_key = $2`, e.UserID, e.IdempotencyKey))
			if err == nil {
				if prev.Kind != domain.EntryGrant || prev.Delta != e.Delta || prev.Reason != e.Reason {
					return domain.ErrIdempotencyConflict
				}
				out = prev
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		balance, err := addBalance(ctx, tx, e.UserID, e.Delta)
		if err != nil {
			return err
		}
		e.BalanceAfter = balance
		out, err = appendEntry(ctx, tx, e)
		return err
	})
	if sqldb.IsUniqueViolation(err) && e.IdempotencyKey != "" {
		// A concurrent grant with the same key committed first: return it.
		return s.Grant(ctx, e)
	}
	if err != nil {
		return domain.Entry{}, fmt.Errorf("points: grant: %w", err)
	}
	return out, nil
}

const confirmationColumns = `jti, user_id, checkout_id, points, currency, idempotency_key, sealed_token, expires_at, created_at`

func scanConfirmation(row capabilitysql.Scanner) (domain.Confirmation, error) {
	var c domain.Confirmation
	err := row.Scan(&c.JTI, &c.UserID, &c.CheckoutID, &c.Points, &c.Currency, &c.IdempotencyKey, &c.SealedToken, &c.ExpiresAt, &c.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, domain.ErrNotFound
	}
	c.ExpiresAt, c.CreatedAt = c.ExpiresAt.UTC(), c.CreatedAt.UTC()
	return c, err
}

var confirmations = capabilitysql.Confirmations[domain.Confirmation]{
	Table: capabilitysql.Table[domain.Confirmation]{Columns: confirmationColumns, Scan: scanConfirmation,
		Values: func(c domain.Confirmation) []any {
			return []any{c.JTI, c.UserID, c.CheckoutID, c.Points, c.Currency, c.IdempotencyKey, c.SealedToken,
				c.ExpiresAt.UTC(), c.CreatedAt.UTC()}
		}},
	UserKey: func(c domain.Confirmation) (string, string) { return c.UserID, c.IdempotencyKey },
}

// SaveConfirmation implements domain.Repository.
func (s *Store) SaveConfirmation(ctx context.Context, c domain.Confirmation) (domain.Confirmation, bool, error) {
	prev, created, err := s.ledger.SaveConfirmation(ctx, s.db, c)
	switch {
	case err != nil:
		return domain.Confirmation{}, false, fmt.Errorf("points: save confirmation: %w", err)
	case !created && (prev.CheckoutID != c.CheckoutID || prev.Points != c.Points):
		return domain.Confirmation{}, false, domain.ErrIdempotencyConflict
	}
	return prev, created, nil
}

// ConfirmationByKey implements domain.Repository.
func (s *Store) ConfirmationByKey(ctx context.Context, userID, key string) (domain.Confirmation, error) {
	return confirmations.ByKey(ctx, s.db.Cached(nil), userID, key)
}

// Confirmation implements domain.Repository.
func (s *Store) Confirmation(ctx context.Context, jti string) (domain.Confirmation, error) {
	return confirmations.ByJTI(ctx, s.db.Cached(nil), jti)
}

const exerciseColumns = `jti, order_id, state, entry_id, points, currency, applied_at, compensated_at`

func scanExercise(row capabilitysql.Scanner) (domain.Exercise, error) {
	var x domain.Exercise
	var applied, compensated sql.NullTime
	err := row.Scan(&x.JTI, &x.OrderID, &x.State, &x.EntryID, &x.Points, &x.Currency, &applied, &compensated)
	if errors.Is(err, sql.ErrNoRows) {
		return x, domain.ErrNotFound
	}
	x.AppliedAt, x.CompensatedAt = capabilitysql.TimeOf(applied), capabilitysql.TimeOf(compensated)
	return x, err
}

var exercises = capabilitysql.Exercises[domain.Exercise]{Table: capabilitysql.Table[domain.Exercise]{
	Columns: exerciseColumns, Scan: scanExercise,
	Values: func(x domain.Exercise) []any {
		return []any{x.JTI, x.OrderID, x.State, x.EntryID, x.Points, x.Currency,
			capabilitysql.NullTime(x.AppliedAt), capabilitysql.NullTime(x.CompensatedAt)}
	},
}}

var ledger = capabilitysql.Ledger[domain.Confirmation, domain.Exercise]{
	Confirmations: confirmations, Exercises: exercises,
	Head: func(x domain.Exercise) (string, domain.ExerciseState, time.Time) {
		return x.OrderID, x.State, x.AppliedAt
	},
}

// Exercise implements domain.Repository: the spend is the ledger's effect.
func (s *Store) Exercise(ctx context.Context, jti, orderID string, now time.Time) (domain.Exercise, error) {
	x, err := s.ledger.Exercise(ctx, s.db, jti, orderID, func(c domain.Confirmation) domain.Exercise {
		return domain.Exercise{JTI: jti, OrderID: orderID, State: domain.ExerciseApplied, EntryID: ids.New("pte"),
			Points: c.Points, Currency: c.Currency, AppliedAt: now}
	}, func(ctx context.Context, tx sqldb.Cached, c domain.Confirmation, x domain.Exercise) (domain.Exercise, error) {
		balance, err := addBalance(ctx, tx, c.UserID, -c.Points)
		if err != nil {
			return x, err
		}
		_, err = appendEntry(ctx, tx, domain.Entry{
			ID: x.EntryID, UserID: c.UserID, Kind: domain.EntrySpend, Delta: -c.Points, BalanceAfter: balance,
			OrderID: orderID, Reason: "order " + orderID, CreatedAt: now,
		})
		return x, err
	})
	if err != nil {
		return domain.Exercise{}, fmt.Errorf("points: exercise: %w", err)
	}
	return x, nil
}

// Compensate implements domain.Repository: the refund is the ledger's
// undo.
func (s *Store) Compensate(ctx context.Context, jti, orderID, reason string, now time.Time) (domain.Exercise, error) {
	x, err := s.ledger.Compensate(ctx, s.db, jti, orderID, capabilitysql.Compensation[domain.Confirmation, domain.Exercise]{
		Now: now,
		Void: func(c domain.Confirmation) domain.Exercise {
			return domain.Exercise{JTI: jti, OrderID: orderID, State: domain.ExerciseCompensated,
				Points: c.Points, Currency: c.Currency, CompensatedAt: now}
		},
		Undo: func(ctx context.Context, tx sqldb.Cached, c domain.Confirmation, x domain.Exercise) (domain.Exercise, error) {
			balance, err := addBalance(ctx, tx, c.UserID, x.Points)
			if err != nil {
				return x, err
			}
			if reason == "" {
				reason = "order " + orderID + " compensated"
			}
			_, err = appendEntry(ctx, tx, domain.Entry{
				ID: ids.New("pte"), UserID: c.UserID, Kind: domain.EntryRefund, Delta: x.Points, BalanceAfter: balance,
				OrderID: orderID, Reason: reason, CreatedAt: now,
			})
			return x, err
		},
	})
	if err != nil {
		return domain.Exercise{}, fmt.Errorf("points: compensate: %w", err)
	}
	return x, nil
}
