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
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

//go:embed migrations/*.sql migrations/simprocessor/*.sql
var migrations embed.FS

// MigrationSet names Payments' migrations in a shared schema_migrations table.
const MigrationSet = "payments"

// Store is the SQL implementation of domain.Repository.
type Store struct {
	db     *sqldb.DB
	ledger capabilitysql.Ledger[domain.Confirmation, domain.Exercise] // ledger, audited
}

var _ domain.Repository = (*Store)(nil)

// NewStore migrates db to Payments' schema and returns the store.
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
const Issuer = "payments"

const methodColumns = `id, user_id, brand, last4, expiry_month, expiry_year, label, processor_ref, idempotency_key, created_at`

func scanMethod(row capabilitysql.Scanner) (domain.PaymentMethod, error) {
	var m domain.PaymentMethod
	err := row.Scan(&m.ID, &m.UserID, &m.Brand, &m.Last4, &m.ExpiryMonth, &m.ExpiryYear, &m.Label, &m.ProcessorRef, &m.IdempotencyKey, &m.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return m, domain.ErrNotFound
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, err
}

// AddPaymentMethod implements domain.Repository. It assigns the id.
func (s *Store) AddPaymentMethod(ctx context.Context, m domain.PaymentMethod) (domain.PaymentMethod, bool, error) {
	m.ID = ids.New("pm")
	res, err := s.db.Cached(nil).ExecContext(ctx, `INSERT INTO payment_methods (`+methodColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key <> '' DO NOTHING`,
		m.ID, m.UserID, m.Brand, m.Last4, m.ExpiryMonth, m.ExpiryYear, m.Label, m.ProcessorRef, m.IdempotencyKey, m.CreatedAt.UTC())
	if err != nil {
		return domain.PaymentMethod{}, false, fmt.Errorf("payments: add payment method: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return m, true, err
	}
	prev, err := s.PaymentMethodByKey(ctx, m.UserID, m.IdempotencyKey)
	if err != nil {
		return domain.PaymentMethod{}, false, err
	}
	if !prev.SameCard(m) {
		return domain.PaymentMethod{}, false, domain.ErrIdempotencyConflict
	}
	return prev, false, nil
}

// PaymentMethodByKey implements domain.Repository.
func (s *Store) PaymentMethodByKey(ctx context.Context, userID, key string) (domain.PaymentMethod, error) {
	return scanMethod(s.db.Cached(nil).QueryRowContext(ctx,
		`SELECT `+methodColumns+` FROM payment_methods WHERE user_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''`, userID, key))
}

// PaymentMethod implements domain.Repository.
func (s *Store) PaymentMethod(ctx context.Context, id string) (domain.PaymentMethod, error) {
	return scanMethod(s.db.Cached(nil).QueryRowContext(ctx, `SELECT `+methodColumns+` FROM payment_methods WHERE id = $1`, id))
}

// PaymentMethods implements domain.Repository.
func (s *Store) PaymentMethods(ctx context.Context, userID string) ([]domain.PaymentMethod, error) {
	rows, err := s.db.Cached(nil).QueryContext(ctx,
		`SELECT `+methodColumns+` FROM payment_methods WHERE user_id = $1 ORDER BY seq DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("payments: payment methods: %w", err)
	}
	defer rows.Close()
	var out []domain.PaymentMethod
	for rows.Next() {
		m, err := scanMethod(rows)
		if err != nil {
			return nil, fmt.Errorf("payments: payment methods: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

const confirmationColumns = `jti, user_id, checkout_id, method_id, amount_minor, currency, authorization_id, idempotency_key, sealed_token, expires_at, created_at`

func scanConfirmation(row capabilitysql.Scanner) (domain.Confirmation, error) {
	var c domain.Confirmation
	err := row.Scan(&c.JTI, &c.UserID, &c.CheckoutID, &c.MethodID, &c.Amount.AmountMinor, &c.Amount.Currency,
		&c.AuthorizationID, &c.IdempotencyKey, &c.SealedToken, &c.ExpiresAt, &c.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, domain.ErrNotFound
	}
	c.ExpiresAt, c.CreatedAt = c.ExpiresAt.UTC(), c.CreatedAt.UTC()
	return c, err
}

var confirmations = capabilitysql.Confirmations[domain.Confirmation]{
	Table: capabilitysql.Table[domain.Confirmation]{Columns: confirmationColumns, Scan: scanConfirmation,
		Values: func(c domain.Confirmation) []any {
			return []any{c.JTI, c.UserID, c.CheckoutID, c.MethodID, c.Amount.AmountMinor, c.Amount.Currency,
				c.AuthorizationID, c.IdempotencyKey, c.SealedToken, c.ExpiresAt.UTC(), c.CreatedAt.UTC()}
		}},
	UserKey: func(c domain.Confirmation) (string, string) { return c.UserID, c.IdempotencyKey },
}

// SaveConfirmation implements domain.Repository.
func (s *Store) SaveConfirmation(ctx context.Context, c domain.Confirmation) (domain.Confirmation, bool, error) {
	prev, created, err := s.ledger.SaveConfirmation(ctx, s.db, c)
	switch {
	case err != nil:
		return domain.Confirmation{}, false, fmt.Errorf("payments: save confirmation: %w", err)
	case !created && !prev.SameRequest(c):
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

const exerciseColumns = `jti, order_id, state, capture_id, refund_id, amount_minor, currency, reason, applied_at, compensated_at`

func scanExercise(row capabilitysql.Scanner) (domain.Exercise, error) {
	var x domain.Exercise
	var applied, compensated sql.NullTime
	err := row.Scan(&x.JTI, &x.OrderID, &x.State, &x.CaptureID, &x.RefundID, &x.Amount.AmountMinor, &x.Amount.Currency,
		&x.Reason, &applied, &compensated)
	if errors.Is(err, sql.ErrNoRows) {
		return x, domain.ErrNotFound
	}
	x.AppliedAt, x.CompensatedAt = capabilitysql.TimeOf(applied), capabilitysql.TimeOf(compensated)
	return x, err
}

var exercises = capabilitysql.Exercises[domain.Exercise]{Table: capabilitysql.Table[domain.Exercise]{
	Columns: exerciseColumns, Scan: scanExercise,
	Values: func(x domain.Exercise) []any {
		return []any{x.JTI, x.OrderID, x.State, x.CaptureID, x.RefundID, x.Amount.AmountMinor, x.Amount.Currency,
			x.Reason, capabilitysql.NullTime(x.AppliedAt), capabilitysql.NullTime(x.CompensatedAt)}
	},
}}

var ledger = capabilitysql.Ledger[domain.Confirmation, domain.Exercise]{
	Confirmations: confirmations, Exercises: exercises, HasReason: true,
	Head: func(x domain.Exercise) (string, domain.ExerciseState, time.Time) {
		return x.OrderID, x.State, x.AppliedAt
	},
}

// Exercise implements domain.Repository: the capture is the ledger's
// effect.
//
// The processor call runs inside the transaction, after the claim: until the
// commit, concurrent exercises of the jti wait on the claim (PostgreSQL) or
// on the write lock (SQLite), so capture runs once, and its failure rolls the
// claim back. A crash or a lost commit after capture leaves no record, and
// the retry's capture gets the same capture id from the processor, because
// capturing is idempotent per hold. The price is a transaction held open for
// one processor call, bounded by ctx.
func (s *Store) Exercise(ctx context.Context, jti, orderID string, now time.Time, capture domain.CaptureFunc) (domain.Exercise, error) {
	x, err := s.ledger.Exercise(ctx, s.db, jti, orderID, func(c domain.Confirmation) domain.Exercise {
		return domain.Exercise{JTI: jti, OrderID: orderID, State: domain.ExerciseApplied, Amount: c.Amount, AppliedAt: now}
	}, func(ctx context.Context, tx sqldb.Cached, c domain.Confirmation, x domain.Exercise) (domain.Exercise, error) {
		var err error
		if x.CaptureID, err = capture(ctx, c); err != nil {
			return x, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE exercises SET capture_id = $1 WHERE jti = $2`, x.CaptureID, jti)
		return x, err
	})
	if err != nil {
		return domain.Exercise{}, fmt.Errorf("payments: exercise: %w", err)
	}
	return x, nil
}

// Compensate implements domain.Repository: the release of the card's
// authorization (a refund once captured) is the ledger's undo, and also
// what voiding a token never exercised does. Like Exercise, it calls the
// processor inside the transaction that records the outcome.
func (s *Store) Compensate(ctx context.Context, jti, orderID, reason string, now time.Time, release domain.ReleaseFunc) (domain.Exercise, error) {
	undo := func(ctx context.Context, tx sqldb.Cached, c domain.Confirmation, x domain.Exercise) (domain.Exercise, error) {
		var err error
		if x.RefundID, err = release(ctx, c, x); err != nil {
			return x, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE exercises SET refund_id = $1 WHERE jti = $2`, x.RefundID, jti)
		return x, err
	}
	x, err := s.ledger.Compensate(ctx, s.db, jti, orderID, capabilitysql.Compensation[domain.Confirmation, domain.Exercise]{
		Reason: reason, Now: now, Undo: undo, Voided: undo,
		Void: func(c domain.Confirmation) domain.Exercise {
			return domain.Exercise{JTI: jti, OrderID: orderID, State: domain.ExerciseCompensated, Amount: c.Amount,
				Reason: reason, CompensatedAt: now}
		},
	})
	if err != nil {
		return domain.Exercise{}, fmt.Errorf("payments: compensate: %w", err)
	}
	return x, nil
}
