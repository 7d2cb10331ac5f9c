// Package app holds the Points use cases: read a balance, grant points,
// confirm a spend with a signed token, and exercise or compensate that token
// for OrderProcessing. Callers, checkouts and confirmation tokens reach it
// already verified by the ports; it decides what the rules allow.
//
// Its rule: it is pure like the domain. It imports no Connect, no generated
// code and no database driver; the confirmation flow it shares with the
// other domains is capability.Confirmer.
package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/services/points/internal/domain"
)

// Caller is the verified principal of a request.
type Caller struct {
	UserID string
	Admin  bool
}

// Service runs the use cases.
type Service struct {
	repo      domain.Repository
	confirmer capability.Confirmer[domain.Confirmation]
	now       func() time.Time
}

// New returns the use cases over a repository, a token issuer and a sealer.
// now defaults to time.Now.
func New(repo domain.Repository, issuer capability.Issuer, sealer capability.Sealer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{repo: repo, now: now, confirmer: capability.Confirmer[domain.Confirmation]{
		Capability: domain.Capability, Issuer: issuer, Sealer: sealer,
		Records: repo, Bind: bind, Now: now,
		Kept: func(c *domain.Confirmation) *capability.Kept { return &c.Kept },
	}}
}

// MaxRecentEntries bounds GetBalance's ledger page.
const MaxRecentEntries = 100

// Balance returns the caller's balance and recent entries.
func (s *Service) Balance(ctx context.Context, c Caller, recent int) (int64, []domain.Entry, error) {
	if recent < 0 || recent > MaxRecentEntries {
		return 0, nil, fmt.Errorf("%w: recent_entries must be 0 to %d", domain.ErrInvalidArgument, MaxRecentEntries)
	}
	return s.repo.Balance(ctx, c.UserID, recent)
}

// Grant credits a user; only admins may.
func (s *Service) Grant(ctx context.Context, c Caller, userID string, points int64, reason, key string) (domain.Entry, error) {
	if !c.Admin {
		return domain.Entry{}, fmt.Errorf("%w: granting points needs the admin scope", domain.ErrPermissionDenied)
	}
	switch {
	case userID == "":
		return domain.Entry{}, fmt.Errorf("%w: user_id is required", domain.ErrInvalidArgument)
	case points <= 0 || points > domain.MaxGrant:
		return domain.Entry{}, fmt.Errorf("%w: points must be 1 to %d", domain.ErrInvalidArgument, domain.MaxGrant)
	case len(reason) > 120:
		return domain.Entry{}, fmt.Errorf("%w: reason is longer than 120 characters", domain.ErrInvalidArgument)
	}
	return s.repo.Grant(ctx, domain.Entry{
		UserID: userID, Kind: domain.EntryGrant, Delta: points, Reason: reason,
		IdempotencyKey: key, CreatedAt: s.now(),
	})
}

// Confirmed is the result of Confirm.
type Confirmed struct {
	Token            string
	ExpiresAt        time.Time
	Value            money.Money
	RemainingBalance int64
}

// Confirm checks that the caller may spend points on a checkout and issues a
// `points:spend` confirmation token. A retry with the same idempotency key
// returns the same token.
func (s *Service) Confirm(ctx context.Context, c Caller, co domain.Checkout, points int64, key string) (Confirmed, error) {
	if co.UserID != c.UserID {
		return Confirmed{}, fmt.Errorf("%w: the checkout belongs to another user", domain.ErrPermissionDenied)
	}
	var balance int64
	out, err := s.confirmer.Confirm(ctx, capability.Request[domain.Confirmation]{
		UserID: c.UserID, Key: key,
		Same: func(prev domain.Confirmation) bool { return prev.CheckoutID == co.ID && prev.Points == points },
		Prepare: func(ctx context.Context) (domain.Confirmation, error) {
			var err error
			if balance, _, err = s.repo.Balance(ctx, c.UserID, 0); err != nil {
				return domain.Confirmation{}, err
			}
			if err := domain.ValidatePoints(points, balance, co); err != nil {
				return domain.Confirmation{}, err
			}
			return domain.Confirmation{UserID: c.UserID, CheckoutID: co.ID, Points: points, Currency: co.Total.Currency,
				IdempotencyKey: key}, nil
		},
	})
	if err != nil {
		return Confirmed{}, err
	}
	if out.Replayed {
		if balance, _, err = s.repo.Balance(ctx, out.Record.UserID, 0); err != nil {
			return Confirmed{}, err
		}
	}
	return Confirmed{Token: out.Token, ExpiresAt: out.ExpiresAt, Value: out.Record.Value(), RemainingBalance: balance - out.Record.Points}, nil
}

// bind is what a confirmation binds into its token: Points' own reference
// inside it is opaque to OrderProcessing and checked against the record at
// Exercise.
func bind(c domain.Confirmation) capability.Bound {
	return capability.Bound{Subject: c.UserID, CheckoutID: c.CheckoutID, Settlement: c.Value(), Constraints: map[string]string{
		"points_sha256": capability.Hash(c.CheckoutID, strconv.FormatInt(c.Points, 10)),
	}}
}

// Exercise spends the points of a verified confirmation token for an order.
func (s *Service) Exercise(ctx context.Context, t capability.Token, orderID string) (domain.Exercise, error) {
	if err := s.confirmer.CheckExercise(ctx, t, orderID); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Exercise(ctx, t.JTI, orderID, s.now())
}

// Compensate refunds (or voids) a verified confirmation token for an order.
// The reason is at most capability.MaxReasonLen characters.
func (s *Service) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (domain.Exercise, error) {
	if err := s.confirmer.CheckCompensate(ctx, t, orderID, reason); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Compensate(ctx, t.JTI, orderID, reason, s.now())
}
