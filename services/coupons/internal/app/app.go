// Package app holds the Coupons use cases: grant a coupon, list the caller's
// coupons with what each would take off a checkout, confirm one with a signed
// token, and exercise or compensate that token for OrderProcessing. Callers,
// checkouts and confirmation tokens reach it already verified by the ports;
// it decides what the rules allow.
//
// Its rule: it is pure like the domain. It imports no Connect, no generated
// code and no database driver; the confirmation flow it shares with the
// other domains is capability.Confirmer.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
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

// Grant gives a user a coupon of a campaign; only admins may. It returns the
// coupon the user already holds when they have one of this campaign. The
// idempotency key is scoped to the admin and the user.
func (s *Service) Grant(ctx context.Context, c Caller, userID string, campaign domain.Campaign, key string) (domain.Coupon, error) {
	if !c.Admin {
		return domain.Coupon{}, fmt.Errorf("%w: granting coupons needs the admin scope", domain.ErrPermissionDenied)
	}
	if userID == "" {
		return domain.Coupon{}, fmt.Errorf("%w: user_id is required", domain.ErrInvalidArgument)
	}
	campaign = campaign.Canonical()
	if err := campaign.Validate(); err != nil {
		return domain.Coupon{}, err
	}
	return s.repo.Grant(ctx, domain.Coupon{
		UserID: userID, Campaign: campaign, GrantedBy: c.UserID, IdempotencyKey: key, CreatedAt: s.now(),
	})
}

// Listed is one coupon as ListAvailableCoupons shows it.
type Listed struct {
	Coupon domain.Coupon
	// Unusable says why the coupon cannot be used now (for the checkout, if
	// one was given); domain.ReasonNone when it can.
	Unusable domain.Reason
	// Discount is what the coupon takes off the checkout; zero without a
	// checkout or when the coupon is unusable.
	Discount money.Money
}

// List returns the caller's coupons, judged at the current time and, when co
// is not nil, against that checkout: usable coupons first, then by the end of
// their validity window, soonest first, so that the coupon about to lapse is
// offered first.
func (s *Service) List(ctx context.Context, c Caller, co *domain.Checkout) ([]Listed, error) {
	if co != nil && co.UserID != c.UserID {
		return nil, fmt.Errorf("%w: the checkout belongs to another user", domain.ErrPermissionDenied)
	}
	coupons, err := s.repo.Coupons(ctx, c.UserID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]Listed, len(coupons))
	for i, cp := range coupons {
		out[i] = Listed{Coupon: cp, Unusable: cp.Availability(now)}
		if co != nil {
			out[i].Discount, out[i].Unusable = cp.Apply(now, co.Total)
		}
	}
	unusable := func(l Listed) int {
		if l.Unusable == domain.ReasonNone {
			return 0
		}
		return 1
	}
	slices.SortFunc(out, func(a, b Listed) int {
		return cmp.Or(
			cmp.Compare(unusable(a), unusable(b)),
			a.Coupon.Campaign.ValidUntil.Compare(b.Coupon.Campaign.ValidUntil),
			cmp.Compare(a.Coupon.Campaign.Code, b.Coupon.Campaign.Code),
		)
	})
	return out, nil
}

// Confirmed is the result of Confirm.
type Confirmed struct {
	Token     string
	ExpiresAt time.Time
	Discount  money.Money
	Coupon    domain.Coupon
}

// Confirm checks that the caller may use a coupon on a checkout and issues a
// `coupons:redeem` confirmation token whose settlement is the discount.
// Nothing is redeemed until the token is exercised. A retry with the same
// idempotency key returns the same token.
func (s *Service) Confirm(ctx context.Context, c Caller, co domain.Checkout, code, key string) (Confirmed, error) {
	if co.UserID != c.UserID {
		return Confirmed{}, fmt.Errorf("%w: the checkout belongs to another user", domain.ErrPermissionDenied)
	}
	if !domain.ValidCode(code) {
		return Confirmed{}, fmt.Errorf("%w: code must be %d to %d characters of A-Z, 0-9 and '-'",
			domain.ErrInvalidArgument, domain.MinCodeLen, domain.MaxCodeLen)
	}
	if err := co.Total.Validate(); err != nil {
		return Confirmed{}, fmt.Errorf("%w: checkout total: %w", domain.ErrInvalidArgument, err)
	}
	var cp domain.Coupon
	out, err := s.confirmer.Confirm(ctx, capability.Request[domain.Confirmation]{
		UserID: c.UserID, Key: key,
		Same: func(prev domain.Confirmation) bool { return prev.CheckoutID == co.ID && prev.Code == code },
		Prepare: func(ctx context.Context) (domain.Confirmation, error) {
			var err error
			cp, err = s.repo.CouponByCode(ctx, c.UserID, code)
			if errors.Is(err, domain.ErrNotFound) {
				return domain.Confirmation{}, fmt.Errorf("%w: you hold no coupon %s", domain.ErrNotFound, code)
			}
			if err != nil {
				return domain.Confirmation{}, err
			}
			discount, reason := cp.Apply(s.now(), co.Total)
			if err := reason.Err(); err != nil {
				return domain.Confirmation{}, err
			}
			return domain.Confirmation{UserID: c.UserID, CheckoutID: co.ID, CouponID: cp.ID, Code: code,
				Discount: discount.AmountMinor, Currency: discount.Currency, IdempotencyKey: key}, nil
		},
	})
	if err != nil {
		return Confirmed{}, err
	}
	if out.Replayed { // the coupon as it is now; Exercise judges it again
		if cp, err = s.repo.CouponByCode(ctx, out.Record.UserID, out.Record.Code); err != nil {
			return Confirmed{}, err
		}
	}
	return Confirmed{Token: out.Token, ExpiresAt: out.ExpiresAt, Discount: out.Record.Settlement(), Coupon: cp}, nil
}

// bind is what a confirmation binds into its token: Coupons' own references
// inside it are opaque to OrderProcessing and checked against the record at
// Exercise. The hash binds checkout, coupon and discount together, so that
// no claim can be swapped for another record's.
func bind(c domain.Confirmation) capability.Bound {
	d := c.Settlement()
	return capability.Bound{Subject: c.UserID, CheckoutID: c.CheckoutID, Settlement: d, Constraints: map[string]string{
		"coupon_id":       c.CouponID,
		"discount_sha256": capability.Hash(c.CheckoutID, c.CouponID, strconv.FormatInt(d.AmountMinor, 10), d.Currency),
	}}
}

// Exercise redeems the coupon of a verified confirmation token for an order,
// once. The coupon's validity window is judged again at the current time.
func (s *Service) Exercise(ctx context.Context, t capability.Token, orderID string) (domain.Exercise, error) {
	if err := s.confirmer.CheckExercise(ctx, t, orderID); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Exercise(ctx, t.JTI, orderID, s.now())
}

// Compensate makes the coupon of a verified confirmation token available
// again, or voids the token if it was never exercised. The reason is at most
// capability.MaxReasonLen characters.
func (s *Service) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (domain.Exercise, error) {
	if err := s.confirmer.CheckCompensate(ctx, t, orderID, reason); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Compensate(ctx, t.JTI, orderID, reason, s.now())
}
