// Package domain holds the Points rules: an append-only ledger per user whose
// balance is derived from it and can never go negative, and the record of
// every confirmation token Points issued and exercised.
//
// It is pure: no I/O, no Connect codes. Errors are sentinels the ports map.
package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Capability is the one capability Points grants.
const Capability = "points:spend"

// MaxGrant bounds one grant, so that a typo cannot mint a fortune.
const MaxGrant = 100_000_000

// Sentinel errors. Wrap them with %w to add detail; the ports map each to a
// Connect code in one place. Those every domain shares are capability's.
var (
	// ErrInvalidArgument reports a malformed request (InvalidArgument).
	ErrInvalidArgument = capability.ErrInvalidArgument
	// ErrInsufficientPoints reports a spend above the balance
	// (FailedPrecondition).
	ErrInsufficientPoints = errors.New("insufficient points")
	// ErrExceedsTotal reports more points than the checkout total
	// (FailedPrecondition).
	ErrExceedsTotal = errors.New("points exceed the checkout total")
	// ErrNotFound reports an unknown confirmation (NotFound).
	ErrNotFound = capability.ErrNotFound
	// ErrPermissionDenied reports an action on someone else's resource
	// (PermissionDenied).
	ErrPermissionDenied = capability.ErrPermissionDenied
	// ErrAlreadyExercised reports a confirmation exercised for another order
	// (AlreadyExists).
	ErrAlreadyExercised = capability.ErrAlreadyExercised
	// ErrVoided reports a confirmation compensated before it was exercised;
	// it can never be exercised (FailedPrecondition).
	ErrVoided = capability.ErrVoided
	// ErrMismatch reports a token whose claims disagree with the record Points
	// keeps for it (PermissionDenied: it is not a token Points issued so).
	ErrMismatch = capability.ErrMismatch
	// ErrIdempotencyConflict reports an idempotency key reused with another
	// request (InvalidArgument).
	ErrIdempotencyConflict = capability.ErrIdempotencyConflict
)

// EntryKind is the kind of a ledger entry.
type EntryKind int

// The ledger entry kinds.
const (
	EntryGrant EntryKind = iota + 1
	EntrySpend
	EntryRefund
)

// Entry is one line of the append-only ledger.
type Entry struct {
	ID             string
	UserID         string
	Kind           EntryKind
	Delta          int64 // positive for grants and refunds, negative for spends
	BalanceAfter   int64 // the user's balance right after this entry
	OrderID        string
	Reason         string
	IdempotencyKey string
	CreatedAt      time.Time
}

// Checkout is what a verified checkout token says about the checkout.
type Checkout = capability.Checkout

// Confirmation is Points' record of one confirmation token it issued: the
// authority that Exercise checks the token's claims against.
type Confirmation struct {
	capability.Kept // the jti, the sealed token, when it expires and was saved
	UserID          string
	CheckoutID      string
	Points          int64
	Currency        string
	IdempotencyKey  string
}

// Value is what the confirmation settles: one point is one minor unit.
func (c Confirmation) Value() money.Money {
	return money.Money{AmountMinor: c.Points, Currency: c.Currency}
}

// ExerciseState is where one confirmation stands: the states every domain
// shares.
type ExerciseState = capability.ExerciseState

// The exercise states.
const (
	ExerciseApplied     = capability.ExerciseApplied
	ExerciseCompensated = capability.ExerciseCompensated
)

// Exercise is the durable result of exercising (or voiding) a confirmation.
// Its primary key is the token's jti: it is the one-time-use authority.
type Exercise struct {
	JTI           string
	OrderID       string
	State         ExerciseState
	EntryID       string // the spend entry; empty when voided before use
	Points        int64
	Currency      string
	AppliedAt     time.Time // zero when voided before use
	CompensatedAt time.Time
}

// ValidatePoints checks a number of points to spend against a balance and a
// checkout total.
func ValidatePoints(points, balance int64, checkout Checkout) error {
	switch {
	case points <= 0:
		return fmt.Errorf("%w: points must be at least 1", ErrInvalidArgument)
	case points > checkout.Total.AmountMinor:
		return fmt.Errorf("%w: %d points, checkout total %d", ErrExceedsTotal, points, checkout.Total.AmountMinor)
	case points > balance:
		return fmt.Errorf("%w: %d points requested, balance %d", ErrInsufficientPoints, points, balance)
	}
	return nil
}

// Repository keeps the ledger, the confirmations and the exercises. Every
// method is atomic; implementations must keep the balance non-negative under
// any concurrency.
type Repository interface {
	// Balance returns the user's balance and up to recent newest entries.
	Balance(ctx context.Context, userID string, recent int) (int64, []Entry, error)
	// Grant appends a grant entry. A second grant with the same user and
	// idempotency key returns the first entry (ErrIdempotencyConflict when
	// the points or reason differ).
	Grant(ctx context.Context, e Entry) (Entry, error)
	// SaveConfirmation stores a new confirmation. When the user already has a
	// confirmation with c.IdempotencyKey, it returns that one instead
	// (ErrIdempotencyConflict when checkout or points differ), and created is
	// false.
	SaveConfirmation(ctx context.Context, c Confirmation) (stored Confirmation, created bool, err error)
	// ConfirmationByKey returns the user's confirmation with an idempotency
	// key, or ErrNotFound.
	ConfirmationByKey(ctx context.Context, userID, key string) (Confirmation, error)
	// Exercise spends the confirmation's points for an order, exactly once:
	// in one transaction it records the exercise under the jti and appends
	// the spend entry. A retry for the same order returns the stored
	// exercise; another order gets ErrAlreadyExercised; a voided
	// confirmation ErrVoided; a short balance ErrInsufficientPoints.
	Exercise(ctx context.Context, jti, orderID string, now time.Time) (Exercise, error)
	// Compensate refunds an applied exercise, or voids a confirmation that
	// was never exercised so that it never will be. Idempotent.
	Compensate(ctx context.Context, jti, orderID, reason string, now time.Time) (Exercise, error)
	// Confirmation returns the confirmation issued with a jti, or ErrNotFound.
	Confirmation(ctx context.Context, jti string) (Confirmation, error)
}
