// Package app holds the Points use cases: read a balance, grant points,
// confirm a spend with a signed token, and exercise or compensate that token
// for OrderProcessing. Callers, checkouts and confirmation tokens reach it
// already verified by the ports; it decides what the rules allow.
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
	repo   domain.Repository
	issuer capability.Issuer
	sealer capability.Sealer
	now    func() time.Time
}

// New returns the use cases over a repository, a token issuer and a sealer.
func New(repo domain.Repository, issuer capability.Issuer, sealer capability.Sealer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{repo: repo, issuer: issuer, sealer: sealer, now: now}
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
	if key != "" {
		prev, err := s.repo.ConfirmationByKey(ctx, c.UserID, key)
		switch {
		case err == nil:
			return s.replay(ctx, prev, co, points)
		case !errors.Is(err, domain.ErrNotFound):
			return Confirmed{}, err
		}
	}
	balance, _, err := s.repo.Balance(ctx, c.UserID, 0)
	if err != nil {
		return Confirmed{}, err
	}
	if err := domain.ValidatePoints(points, balance, co); err != nil {
		return Confirmed{}, err
	}
	value := money.Money{AmountMinor: points, Currency: co.Total.Currency}
	issued, err := s.issuer.IssueConfirmation(ctx, capability.Draft{
		Subject:     c.UserID,
		CheckoutID:  co.ID,
		Capability:  domain.Capability,
		Constraints: constraints(co.ID, points),
		Settlement:  value,
	})
	if err != nil {
		return Confirmed{}, fmt.Errorf("issue confirmation: %w", err)
	}
	sealed, err := s.sealer.Seal(issued.JTI, issued.Token)
	if err != nil {
		return Confirmed{}, fmt.Errorf("seal confirmation: %w", err)
	}
	stored, created, err := s.repo.SaveConfirmation(ctx, domain.Confirmation{
		JTI: issued.JTI, UserID: c.UserID, CheckoutID: co.ID, Points: points, Currency: co.Total.Currency,
		IdempotencyKey: key, SealedToken: sealed, ExpiresAt: issued.ExpiresAt, CreatedAt: s.now(),
	})
	if err != nil {
		return Confirmed{}, err
	}
	if !created { // a concurrent retry with the same key won the race
		return s.replay(ctx, stored, co, points)
	}
	return Confirmed{Token: issued.Token, ExpiresAt: issued.ExpiresAt, Value: value, RemainingBalance: balance - points}, nil
}

// replay returns the result of an earlier Confirm with the same key.
func (s *Service) replay(ctx context.Context, prev domain.Confirmation, co domain.Checkout, points int64) (Confirmed, error) {
	if prev.CheckoutID != co.ID || prev.Points != points {
		return Confirmed{}, domain.ErrIdempotencyConflict
	}
	tok, err := s.sealer.Open(prev.JTI, prev.SealedToken)
	if err != nil {
		return Confirmed{}, fmt.Errorf("open stored confirmation: %w", err)
	}
	balance, _, err := s.repo.Balance(ctx, prev.UserID, 0)
	if err != nil {
		return Confirmed{}, err
	}
	return Confirmed{Token: tok, ExpiresAt: prev.ExpiresAt, Value: prev.Value(), RemainingBalance: balance - prev.Points}, nil
}

// constraints are Points' own references inside the token: opaque to
// OrderProcessing, checked against the record at Exercise.
func constraints(checkoutID string, points int64) map[string]string {
	sum := sha256.Sum256([]byte(checkoutID + "\x00" + strconv.FormatInt(points, 10)))
	return map[string]string{"points_sha256": hex.EncodeToString(sum[:])}
}

// check verifies a token's claims against the confirmation record Points
// kept when it signed it.
func (s *Service) check(ctx context.Context, t capability.Token) error {
	if !t.Grants(domain.Capability) {
		return fmt.Errorf("%w: capabilities %q", domain.ErrMismatch, t.Capabilities)
	}
	rec, err := s.repo.Confirmation(ctx, t.JTI)
	if errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("%w: no confirmation with this jti", domain.ErrMismatch)
	}
	if err != nil {
		return err
	}
	want := constraints(rec.CheckoutID, rec.Points)
	if rec.UserID != t.Subject || rec.CheckoutID != t.CheckoutID || t.Settlement != rec.Value() ||
		len(t.Constraints) != len(want) || t.Constraints["points_sha256"] != want["points_sha256"] {
		return domain.ErrMismatch
	}
	return nil
}

// Exercise spends the points of a verified confirmation token for an order.
func (s *Service) Exercise(ctx context.Context, t capability.Token, orderID string) (domain.Exercise, error) {
	if orderID == "" {
		return domain.Exercise{}, fmt.Errorf("%w: order_id is required", domain.ErrInvalidArgument)
	}
	if err := s.check(ctx, t); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Exercise(ctx, t.JTI, orderID, s.now())
}

// Compensate refunds (or voids) a verified confirmation token for an order.
func (s *Service) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (domain.Exercise, error) {
	switch {
	case orderID == "":
		return domain.Exercise{}, fmt.Errorf("%w: order_id is required", domain.ErrInvalidArgument)
	case len(reason) > 200:
		return domain.Exercise{}, fmt.Errorf("%w: reason is longer than 200 characters", domain.ErrInvalidArgument)
	}
	if err := s.check(ctx, t); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Compensate(ctx, t.JTI, orderID, reason, s.now())
}
