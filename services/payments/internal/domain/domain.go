// Package domain holds the Payments rules: stored payment methods that keep
// only a card's brand and last four digits, authorization holds that back a
// `payments:capture` confirmation token, and the record of every confirmation
// Payments issued, captured, voided or refunded.
//
// It is pure: no I/O, no Connect codes. Errors are sentinels the ports map.
// Here the card number (PAN) exists only inside a [Card], which never prints
// it, on its way to the [Processor].
package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Capability is the one capability Payments grants.
const Capability = "payments:capture"

// Sentinel errors. Wrap them with %w to add detail; the ports map each to a
// Connect code in one place. Those every domain shares are capability's.
var (
	// ErrInvalidArgument reports a malformed request (InvalidArgument).
	ErrInvalidArgument = capability.ErrInvalidArgument
	// ErrNotFound reports an unknown payment method or confirmation
	// (NotFound).
	ErrNotFound = capability.ErrNotFound
	// ErrPermissionDenied reports an action on someone else's resource, or
	// an admin action without the admin scope (PermissionDenied).
	ErrPermissionDenied = capability.ErrPermissionDenied
	// ErrExceedsTotal reports an amount above the checkout total
	// (FailedPrecondition).
	ErrExceedsTotal = errors.New("amount exceeds the checkout total")
	// ErrCardExpired reports a stored card that has expired since it was
	// added (FailedPrecondition).
	ErrCardExpired = errors.New("card has expired")
	// ErrDeclined reports a processor that refused the authorization hold
	// (FailedPrecondition).
	ErrDeclined = errors.New("card declined")
	// ErrCaptureFailed reports a processor that refused to capture a hold
	// (FailedPrecondition). Nothing was captured.
	ErrCaptureFailed = errors.New("capture failed")
	// ErrProcessorUnavailable reports a processor that did not answer in
	// time or at all (Unavailable: the caller may retry with the same
	// idempotency key).
	ErrProcessorUnavailable = errors.New("payment processor unavailable")
	// ErrHoldCaptured reports a void of a hold that was already captured
	// (FailedPrecondition). Compensate handles it by refunding instead.
	ErrHoldCaptured = errors.New("hold was already captured")
	// ErrAlreadyExercised reports a confirmation exercised for another order
	// (AlreadyExists).
	ErrAlreadyExercised = capability.ErrAlreadyExercised
	// ErrVoided reports a confirmation compensated before it was exercised,
	// or a hold voided at the processor; it can never be captured
	// (FailedPrecondition).
	ErrVoided = capability.ErrVoided
	// ErrMismatch reports a token whose claims disagree with the record
	// Payments keeps for it (PermissionDenied: it is not a token Payments
	// issued so).
	ErrMismatch = capability.ErrMismatch
	// ErrIdempotencyConflict reports an idempotency key reused with another
	// request (InvalidArgument).
	ErrIdempotencyConflict = capability.ErrIdempotencyConflict
)

// PaymentMethod is a stored card: what Payments keeps instead of the card
// number.
type PaymentMethod struct {
	ID             string // pm_...
	UserID         string
	Brand          Brand
	Last4          string
	ExpiryMonth    int
	ExpiryYear     int
	Label          string
	ProcessorRef   string // the processor's opaque reference for the card
	IdempotencyKey string
	CreatedAt      time.Time
}

// SameCard reports whether o describes the same card as m, as far as the
// stored fields tell (the number is gone): what an idempotent retry of
// AddPaymentMethod must repeat.
func (m PaymentMethod) SameCard(o PaymentMethod) bool {
	return m.UserID == o.UserID && m.Brand == o.Brand && m.Last4 == o.Last4 &&
		m.ExpiryMonth == o.ExpiryMonth && m.ExpiryYear == o.ExpiryYear && m.Label == o.Label
}

// Expired reports whether the card is past its expiry month at now. A card is
// valid through the last day of its expiry month, in UTC.
func (m PaymentMethod) Expired(now time.Time) bool {
	return expired(m.ExpiryMonth, m.ExpiryYear, now)
}

// Checkout is what a verified checkout token says about the checkout.
type Checkout = capability.Checkout

// ValidateAmount checks an amount to hold against the checkout it pays for:
// positive, in the checkout's currency, at most its total.
func ValidateAmount(amount money.Money, co Checkout) error {
	switch {
	case !money.ValidCurrency(amount.Currency):
		return fmt.Errorf("%w: amount currency %q is not an ISO 4217 code", ErrInvalidArgument, amount.Currency)
	case amount.Currency != co.Total.Currency:
		return fmt.Errorf("%w: amount is in %s, the checkout in %s", ErrInvalidArgument, amount.Currency, co.Total.Currency)
	case amount.AmountMinor <= 0:
		return fmt.Errorf("%w: amount must be positive", ErrInvalidArgument)
	case amount.AmountMinor > co.Total.AmountMinor:
		return fmt.Errorf("%w: %s held, checkout total %s", ErrExceedsTotal, amount, co.Total)
	}
	return nil
}

// Confirmation is Payments' record of one confirmation token it issued and
// the authorization hold behind it: the authority that Exercise checks the
// token's claims against.
type Confirmation struct {
	capability.Kept // the jti, the sealed token, when it expires and was saved
	UserID          string
	CheckoutID      string
	MethodID        string
	Amount          money.Money
	AuthorizationID string // the processor's hold (auth_...)
	IdempotencyKey  string
}

// SameRequest reports whether o asks for the same hold as c: what an
// idempotent retry of ConfirmPayment must repeat.
func (c Confirmation) SameRequest(o Confirmation) bool {
	return c.UserID == o.UserID && c.CheckoutID == o.CheckoutID && c.MethodID == o.MethodID && c.Amount == o.Amount
}

// ExerciseState is where one confirmation stands: the states every domain
// shares.
type ExerciseState = capability.ExerciseState

// The exercise states.
const (
	ExerciseApplied     = capability.ExerciseApplied
	ExerciseCompensated = capability.ExerciseCompensated
)

// Exercise is the durable result of exercising (capturing) or compensating
// (refunding or voiding) a confirmation. Its primary key is the token's jti:
// it is the one-time-use authority.
type Exercise struct {
	JTI           string
	OrderID       string
	State         ExerciseState
	CaptureID     string // empty when voided before use
	RefundID      string // set when a capture was refunded
	Amount        money.Money
	Reason        string    // why it was compensated, for the audit trail
	AppliedAt     time.Time // zero when voided before use
	CompensatedAt time.Time
}

// CaptureFunc captures the hold of a confirmation and returns the capture
// id. It must be idempotent: it may run again after a transaction that
// called it was rolled back.
type CaptureFunc func(ctx context.Context, c Confirmation) (captureID string, err error)

// ReleaseFunc undoes the money side of a confirmation: it voids the hold when
// x was never applied (x.AppliedAt is zero) and refunds the capture
// otherwise, returning the refund id (empty for a void). It must be
// idempotent, like [CaptureFunc].
type ReleaseFunc func(ctx context.Context, c Confirmation, x Exercise) (refundID string, err error)

// Repository keeps payment methods, confirmations and exercises. Every
// method is atomic.
type Repository interface {
	// AddPaymentMethod stores a new payment method. When the user already
	// has one with m.IdempotencyKey, it returns that one instead
	// (ErrIdempotencyConflict when brand, last4, expiry or label differ),
	// and created is false.
	AddPaymentMethod(ctx context.Context, m PaymentMethod) (stored PaymentMethod, created bool, err error)
	// PaymentMethodByKey returns the user's payment method added with an
	// idempotency key, or ErrNotFound.
	PaymentMethodByKey(ctx context.Context, userID, key string) (PaymentMethod, error)
	// PaymentMethod returns a payment method by id, or ErrNotFound.
	PaymentMethod(ctx context.Context, id string) (PaymentMethod, error)
	// PaymentMethods lists the user's payment methods, newest first.
	PaymentMethods(ctx context.Context, userID string) ([]PaymentMethod, error)
	// SaveConfirmation stores a new confirmation. When the user already has a
	// confirmation with c.IdempotencyKey, it returns that one instead
	// (ErrIdempotencyConflict when checkout, method or amount differ), and
	// created is false.
	SaveConfirmation(ctx context.Context, c Confirmation) (stored Confirmation, created bool, err error)
	// ConfirmationByKey returns the user's confirmation with an idempotency
	// key, or ErrNotFound.
	ConfirmationByKey(ctx context.Context, userID, key string) (Confirmation, error)
	// Confirmation returns the confirmation issued with a jti, or ErrNotFound.
	Confirmation(ctx context.Context, jti string) (Confirmation, error)
	// Exercise captures the confirmation's hold for an order, exactly once:
	// in one transaction it records the exercise under the jti and calls
	// capture, so that the capture and its record commit together or not at
	// all. A retry for the same order returns the stored exercise without
	// calling capture; another order gets ErrAlreadyExercised; a voided
	// confirmation ErrVoided; an error from capture is returned and nothing
	// is recorded.
	Exercise(ctx context.Context, jti, orderID string, now time.Time, capture CaptureFunc) (Exercise, error)
	// Compensate refunds an applied exercise, or voids a confirmation that
	// was never exercised so that it never will be, calling release in the
	// same transaction as the record. Idempotent: release runs only while
	// the record still says it is needed.
	Compensate(ctx context.Context, jti, orderID, reason string, now time.Time, release ReleaseFunc) (Exercise, error)
}

// Processor is the payment processor: it keeps the card numbers and moves
// the money. Every method is idempotent, so that Payments can repeat any call
// after a crash or a lost answer, or make it from concurrent retries:
// Tokenize and Authorize by their key, and Capture, Void and Refund by the
// authorization id, because each happens at most once per hold and always
// for the full amount. A processor that does not answer in time returns
// ErrProcessorUnavailable.
type Processor interface {
	// Tokenize hands a card to the processor and returns its opaque
	// reference for it; the card number stays with the processor. A second
	// call with the same key returns the first reference
	// (ErrIdempotencyConflict when the card differs).
	Tokenize(ctx context.Context, card Card, key string) (ref string, err error)
	// Authorize places a hold of amount on a card and returns its
	// authorization id. A second call with the same key returns the first
	// hold (ErrIdempotencyConflict when card or amount differ). A refused
	// hold is ErrDeclined.
	Authorize(ctx context.Context, cardRef string, amount money.Money, key string) (authorizationID string, err error)
	// Capture takes the held amount and returns the capture id; capturing a
	// captured hold returns the same id. A refused capture is
	// ErrCaptureFailed, a voided hold ErrVoided.
	Capture(ctx context.Context, authorizationID string) (captureID string, err error)
	// Void releases a hold that was never captured; voiding a voided hold
	// succeeds. A captured hold is ErrHoldCaptured.
	Void(ctx context.Context, authorizationID string) error
	// Refund gives back the capture of a hold and returns the refund id;
	// refunding again returns the same id.
	Refund(ctx context.Context, authorizationID string) (refundID string, err error)
}
