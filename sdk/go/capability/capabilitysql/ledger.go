package capabilitysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// Ledger is a domain's two tables and the exercise protocol every domain
// runs on them: a token's exercises row, keyed by its jti, is claimed once,
// in the transaction that applies or undoes the domain's effect, so the
// effect happens at most once per token under any concurrency, and a retry
// returns the stored result.
//
// The exercises table has the columns order_id, state (a
// capability.ExerciseState), applied_at and compensated_at, and reason when
// HasReason is set; the domain's own columns (its effect's references) come
// after them in Columns.
type Ledger[C, X any] struct {
	Confirmations Confirmations[C]
	Exercises     Exercises[X]
	// Head returns what the protocol reads of an exercise row: its order,
	// state and when it was applied (zero when voided before use).
	Head func(x X) (orderID string, state capability.ExerciseState, appliedAt time.Time)
	// HasReason is set when the exercises table keeps the compensation's
	// reason in a column reason.
	HasReason bool
	// Trail, when set, records the tokens' lifecycle in the domain's audit
	// trail, each event in the transaction of its effect: issued
	// ([Ledger.SaveConfirmation] of a new record), exercised (the claim
	// that applied the effect), compensated (the flip that undid it, or
	// the void of a token never exercised). A retry answered from the
	// stored row records nothing: nothing happened.
	Trail *audit.Trail
	// Token returns what the audit events of a confirmation's token say of
	// it (Issuer, JTI, Kind, Subject, CheckoutID, ExpiresAt); required with
	// Trail.
	Token func(c C) audit.Event
}

// record appends the event of action on c's token, for an order, to
// l.Trail inside tx; without a Trail it records nothing.
func (l Ledger[C, X]) record(ctx context.Context, tx audit.Tx, action audit.Action, c C, orderID string) error {
	if l.Trail == nil {
		return nil
	}
	e := l.Token(c)
	e.Action, e.OrderID = action, orderID
	return l.Trail.Append(ctx, tx, e)
}

// SaveConfirmation stores c with [Confirmations.Save], in one transaction
// of db with its issued event when c is new.
func (l Ledger[C, X]) SaveConfirmation(ctx context.Context, db *sqldb.DB, c C) (stored C, created bool, err error) {
	err = db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := db.Cached(sqlTx)
		stored, created, err = l.Confirmations.Save(ctx, tx, c)
		if err != nil || !created {
			return err
		}
		return l.record(ctx, tx, audit.Issued, stored, "")
	})
	return stored, created, err
}

// Effect is a domain's own part of an exercise or a compensation: it runs
// in the protocol's transaction, after the claim, with the token's
// confirmation c and its exercise row x, and returns x as it now stands.
// Its error rolls the whole transaction back, the claim with it.
type Effect[C, X any] func(ctx context.Context, tx sqldb.Cached, c C, x X) (X, error)

// Exercise exercises the token with a jti for an order, in one transaction
// of db: it reads the token's confirmation c (an error wrapping
// capability.ErrNotFound when there is none), claims its exercise row with
// claim(c) and, when this call made the claim, applies the effect. When
// the row existed, it returns it unchanged if it is this order's (a retry),
// and otherwise capability.ErrAlreadyExercised (another order's) or
// capability.ErrVoided (compensated before it was ever applied).
func (l Ledger[C, X]) Exercise(ctx context.Context, db *sqldb.DB, jti, orderID string, claim func(c C) X, apply Effect[C, X]) (X, error) {
	return l.run(ctx, db, jti, func(tx sqldb.Cached, c C) (X, error) {
		x, inserted, err := l.Exercises.Claim(ctx, tx, jti, claim(c))
		switch {
		case err != nil:
			return x, err
		case inserted:
			if x, err = apply(ctx, tx, c, x); err != nil {
				return x, err
			}
			return x, l.record(ctx, tx, audit.Exercised, c, orderID)
		}
		order, state, applied := l.Head(x)
		switch {
		case order != orderID:
			return x, capability.ErrAlreadyExercised
		case state == capability.ExerciseCompensated && applied.IsZero():
			return x, capability.ErrVoided
		}
		return x, nil // a retry: the stored result
	})
}

// Compensation is what [Ledger.Compensate] does of a domain's own.
type Compensation[C, X any] struct {
	// Reason is kept in the reason column (when the table has one).
	Reason string
	Now    time.Time
	// Void returns the exercise row that voids a token never exercised, in
	// state capability.ExerciseCompensated, so that a late Exercise is
	// refused.
	Void func(c C) X
	// Undo reverses the effect of an applied exercise; it runs once per
	// token, in the transaction that flipped the row to compensated.
	Undo Effect[C, X]
	// Voided, when set, runs in the transaction that voided a token never
	// exercised (Payments releases the card's authorization there).
	Voided Effect[C, X]
}

// Compensate undoes the exercise of the token with a jti for an order, or
// voids a token never exercised, in one transaction of db. Only the
// transaction whose update flips an applied row to compensated runs Undo,
// so concurrent compensations undo once; a compensation already made
// returns the stored row. A token exercised for another order is
// capability.ErrAlreadyExercised.
func (l Ledger[C, X]) Compensate(ctx context.Context, db *sqldb.DB, jti, orderID string, comp Compensation[C, X]) (X, error) {
	return l.run(ctx, db, jti, func(tx sqldb.Cached, c C) (X, error) {
		x, inserted, err := l.Exercises.Claim(ctx, tx, jti, comp.Void(c))
		switch {
		case err != nil:
			return x, err
		case inserted && comp.Voided != nil:
			if x, err = comp.Voided(ctx, tx, c, x); err != nil {
				return x, err
			}
			return x, l.record(ctx, tx, audit.Compensated, c, orderID)
		case inserted:
			return x, l.record(ctx, tx, audit.Compensated, c, orderID)
		}
		if order, _, _ := l.Head(x); order != orderID {
			return x, capability.ErrAlreadyExercised
		}
		x, err = l.flip(ctx, tx, jti, comp)
		switch {
		case errors.Is(err, capability.ErrNotFound): // already compensated
			return l.Exercises.ByJTI(ctx, tx, jti)
		case err != nil:
			return x, err
		}
		if x, err = comp.Undo(ctx, tx, c, x); err != nil {
			return x, err
		}
		return x, l.record(ctx, tx, audit.Compensated, c, orderID)
	})
}

// run runs f in one transaction of db (run again when the database asks
// for a retry) with the confirmation of the token with a jti, and returns
// what f returns, or the zero X with the error that rolled it back.
func (l Ledger[C, X]) run(ctx context.Context, db *sqldb.DB, jti string, f func(tx sqldb.Cached, c C) (X, error)) (X, error) {
	var out X
	err := db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := db.Cached(sqlTx) // statements prepared once, run in sqlTx
		c, err := l.Confirmations.ByJTI(ctx, tx, jti)
		if err != nil {
			return err
		}
		out, err = f(tx, c)
		return err
	})
	if err != nil {
		var zero X
		return zero, err
	}
	return out, nil
}

// flip turns the applied exercise of jti to compensated and returns it, or
// an error wrapping capability.ErrNotFound when it is not applied (any
// more): of concurrent compensations, only one flips it.
func (l Ledger[C, X]) flip(ctx context.Context, q Querier, jti string, comp Compensation[C, X]) (X, error) {
	set, args := `state = $1, compensated_at = $2`, []any{capability.ExerciseCompensated, comp.Now.UTC(), jti, capability.ExerciseApplied}
	if l.HasReason {
		set, args = set+`, reason = $5`, append(args, comp.Reason)
	}
	return l.Exercises.Scan(q.QueryRowContext(ctx, `UPDATE exercises SET `+set+
		` WHERE jti = $3 AND state = $4 RETURNING `+l.Exercises.Columns, args...))
}

// Audited returns l recording in the audit trail of the domain named
// service (its issuer name), kept in db, whose audit tables it migrates;
// txn reads the request's transaction id from its context
// (authn.TxnFrom). token describes a confirmation's token (see
// [Ledger.Token]).
func (l Ledger[C, X]) Audited(ctx context.Context, db *sqldb.DB, service string, txn func(context.Context) string,
	token func(c C) audit.Event) (Ledger[C, X], error) {
	if err := audit.Migrate(ctx, db); err != nil {
		return l, fmt.Errorf("%s: migrate audit: %w", service, err)
	}
	l.Trail = &audit.Trail{Log: audit.New(db), Service: service, Txn: txn}
	l.Token = token
	return l, nil
}
