// Package app holds the Payments use cases: store and list a user's cards,
// confirm a payment with an authorization hold and a signed token, and
// exercise (capture) or compensate (void or refund) that token for
// OrderProcessing. Callers, checkouts and confirmation tokens reach it
// already verified by the ports; it decides what the rules allow.
//
// Its rule: it is pure like the domain. It imports no Connect, no generated
// code and no database driver; the confirmation flow it shares with the
// other domains is capability.Confirmer.
//
// A card number passes through AddPaymentMethod on its way to the processor
// and is dropped there: nothing here stores, logs or returns it.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

// Caller is the verified principal of a request.
type Caller struct {
	UserID string
	Admin  bool
}

// Service runs the use cases.
type Service struct {
	repo      domain.Repository
	proc      domain.Processor
	confirmer capability.Confirmer[domain.Confirmation]
	now       func() time.Time
}

// New returns the use cases over a repository, a payment processor, a token
// issuer and a sealer. now defaults to time.Now; its readings are taken in
// UTC and truncated to the microsecond, what PostgreSQL keeps, so that a
// result first returned equals the same record read back from the store.
func New(repo domain.Repository, proc domain.Processor, issuer capability.Issuer, sealer capability.Sealer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	clock := func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	return &Service{repo: repo, proc: proc, now: clock, confirmer: capability.Confirmer[domain.Confirmation]{
		Capability: domain.Capability, Issuer: issuer, Sealer: sealer,
		Records: repo, Bind: bind, Now: clock,
		Kept: func(c *domain.Confirmation) *capability.Kept { return &c.Kept },
	}}
}

// NewPaymentMethod is a card to store for a user.
type NewPaymentMethod struct {
	UserID string
	// CardNumber is the full card number (PAN). It goes to the processor
	// and nowhere else.
	CardNumber     string
	ExpiryMonth    int
	ExpiryYear     int
	Label          string
	IdempotencyKey string
}

// Format prints the request without its card number, for every fmt verb, so
// that logging the request cannot leak it.
func (n NewPaymentMethod) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "{UserID:%s CardNumber:[redacted] Expiry:%02d/%d Label:%q IdempotencyKey:%q}",
		n.UserID, n.ExpiryMonth, n.ExpiryYear, n.Label, n.IdempotencyKey)
}

// AddPaymentMethod stores a card for a user; only admins may. The card
// number is checked, handed to the processor for its reference, and
// dropped: the stored method keeps its brand and last four digits. A retry
// with the same idempotency key returns the first method.
func (s *Service) AddPaymentMethod(ctx context.Context, c Caller, in NewPaymentMethod) (domain.PaymentMethod, error) {
	if !c.Admin {
		return domain.PaymentMethod{}, fmt.Errorf("%w: adding a payment method needs the admin scope", domain.ErrPermissionDenied)
	}
	if in.UserID == "" {
		return domain.PaymentMethod{}, fmt.Errorf("%w: user_id is required", domain.ErrInvalidArgument)
	}
	card, err := domain.ParseCard(in.CardNumber)
	if err != nil {
		return domain.PaymentMethod{}, err
	}
	now := s.now()
	if err := domain.ValidateExpiry(in.ExpiryMonth, in.ExpiryYear, now); err != nil {
		return domain.PaymentMethod{}, err
	}
	if err := domain.ValidateLabel(in.Label); err != nil {
		return domain.PaymentMethod{}, err
	}
	m := domain.PaymentMethod{
		UserID: in.UserID, Brand: card.Brand, Last4: card.Last4, ExpiryMonth: in.ExpiryMonth, ExpiryYear: in.ExpiryYear,
		Label: in.Label, IdempotencyKey: in.IdempotencyKey, CreatedAt: now,
	}
	if in.IdempotencyKey != "" {
		// Answer a retry before the processor is asked for a second reference.
		prev, err := s.repo.PaymentMethodByKey(ctx, in.UserID, in.IdempotencyKey)
		switch {
		case err == nil && !prev.SameCard(m):
			return domain.PaymentMethod{}, domain.ErrIdempotencyConflict
		case err == nil:
			return prev, nil
		case !errors.Is(err, domain.ErrNotFound):
			return domain.PaymentMethod{}, err
		}
	}
	// Concurrent retries get past the check above together: the key makes
	// the processor tokenize the card once for all of them.
	if m.ProcessorRef, err = s.proc.Tokenize(ctx, card, processorKey("method", in.UserID, in.IdempotencyKey)); err != nil {
		return domain.PaymentMethod{}, fmt.Errorf("tokenize card: %w", err)
	}
	stored, _, err := s.repo.AddPaymentMethod(ctx, m)
	return stored, err
}

// ListPaymentMethods returns the caller's payment methods, newest first.
func (s *Service) ListPaymentMethods(ctx context.Context, c Caller) ([]domain.PaymentMethod, error) {
	return s.repo.PaymentMethods(ctx, c.UserID)
}

// Confirmed is the result of ConfirmPayment.
type Confirmed struct {
	Token           string
	ExpiresAt       time.Time
	Amount          money.Money
	AuthorizationID string
	Method          domain.PaymentMethod
}

// ConfirmPayment places an authorization hold for amount on one of the
// caller's payment methods and issues a `payments:capture` confirmation
// token that settles it. A retry with the same idempotency key returns the
// same token and hold, and places no second hold, even after a crash between
// the hold and the record: the processor's key is derived from the user and
// the idempotency key.
func (s *Service) ConfirmPayment(ctx context.Context, c Caller, co domain.Checkout, methodID string, amount money.Money, key string) (Confirmed, error) {
	if co.UserID != c.UserID {
		return Confirmed{}, fmt.Errorf("%w: the checkout belongs to another user", domain.ErrPermissionDenied)
	}
	m, err := s.repo.PaymentMethod(ctx, methodID)
	if err != nil {
		return Confirmed{}, fmt.Errorf("payment method: %w", err)
	}
	if m.UserID != c.UserID {
		return Confirmed{}, fmt.Errorf("%w: the payment method belongs to another user", domain.ErrPermissionDenied)
	}
	req := domain.Confirmation{UserID: c.UserID, CheckoutID: co.ID, MethodID: m.ID, Amount: amount, IdempotencyKey: key}
	out, err := s.confirmer.Confirm(ctx, capability.Request[domain.Confirmation]{
		UserID: c.UserID, Key: key,
		Same: req.SameRequest,
		Prepare: func(ctx context.Context) (domain.Confirmation, error) {
			if err := domain.ValidateAmount(amount, co); err != nil {
				return domain.Confirmation{}, err
			}
			if m.Expired(s.now()) {
				return domain.Confirmation{}, fmt.Errorf("%w: %s ending %s expired in %02d/%d", domain.ErrCardExpired, m.Brand, m.Last4, m.ExpiryMonth, m.ExpiryYear)
			}
			var err error
			if req.AuthorizationID, err = s.proc.Authorize(ctx, m.ProcessorRef, amount, processorKey("confirm", c.UserID, key)); err != nil {
				return domain.Confirmation{}, fmt.Errorf("authorize: %w", err)
			}
			return req, nil
		},
	})
	if err != nil {
		return Confirmed{}, err
	}
	return Confirmed{Token: out.Token, ExpiresAt: out.ExpiresAt, Amount: out.Record.Amount, AuthorizationID: out.Record.AuthorizationID, Method: m}, nil
}

// processorKey is the processor's idempotency key for a client's key of
// the operation op ("confirm": the hold of a ConfirmPayment; "method": the
// card of an AddPaymentMethod): stable across retries, so a retry finds the
// hold or card a crashed or concurrent attempt made. It is a hash because
// the client's key is none of the processor's business. Without a client
// key every call is a new one.
func processorKey(op, userID, key string) string {
	if key == "" {
		return ids.New(op)
	}
	sum := sha256.Sum256([]byte(userID + "\x00" + key))
	return op + "_" + hex.EncodeToString(sum[:])
}

// bind is what a confirmation binds into its token: Payments' own references
// inside it are opaque to OrderProcessing and checked against the record at
// Exercise.
func bind(c domain.Confirmation) capability.Bound {
	return capability.Bound{Subject: c.UserID, CheckoutID: c.CheckoutID, Settlement: c.Amount, Constraints: map[string]string{
		"authorization_id": c.AuthorizationID,
		"amount_sha256":    capability.Hash(c.AuthorizationID, c.CheckoutID, strconv.FormatInt(c.Amount.AmountMinor, 10), c.Amount.Currency),
	}}
}

// Exercise captures the hold of a verified confirmation token for an order,
// exactly once.
func (s *Service) Exercise(ctx context.Context, t capability.Token, orderID string) (domain.Exercise, error) {
	if err := s.confirmer.CheckExercise(ctx, t, orderID); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Exercise(ctx, t.JTI, orderID, s.now(), func(ctx context.Context, c domain.Confirmation) (string, error) {
		return s.proc.Capture(ctx, c.AuthorizationID)
	})
}

// Compensate refunds the capture of a verified confirmation token for an
// order, or voids its hold when it was never captured so that it never will
// be. It is idempotent, and works after the token expired (the ports skip
// that check). The reason is at most capability.MaxReasonLen characters.
func (s *Service) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (domain.Exercise, error) {
	if err := s.confirmer.CheckCompensate(ctx, t, orderID, reason); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Compensate(ctx, t.JTI, orderID, reason, s.now(), s.release)
}

// release voids the hold of a confirmation never exercised, and refunds the
// capture of one that was.
func (s *Service) release(ctx context.Context, c domain.Confirmation, x domain.Exercise) (string, error) {
	if x.AppliedAt.IsZero() {
		err := s.proc.Void(ctx, c.AuthorizationID)
		if !errors.Is(err, domain.ErrHoldCaptured) {
			return "", err
		}
		// An Exercise captured the hold and lost its commit: the money
		// moved without a record, so give it back.
	}
	return s.proc.Refund(ctx, c.AuthorizationID)
}
