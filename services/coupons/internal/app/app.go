// Package app holds the Coupons use cases: grant a coupon, list the caller's
// coupons with what each would take off a checkout, confirm one with a signed
// token, and exercise or compensate that token for OrderProcessing. Callers,
// checkouts and confirmation tokens reach it already verified by the ports;
// it decides what the rules allow.
package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

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
	repo   domain.Repository
	issuer capability.Issuer
	sealer capability.Sealer
	now    func() time.Time
}

// New returns the use cases over a repository, a token issuer and a sealer.
// now defaults to time.Now.
func New(repo domain.Repository, issuer capability.Issuer, sealer capability.Sealer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{repo: repo, issuer: issuer, sealer: sealer, now: now}
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
	if key != "" {
		prev, err := s.repo.ConfirmationByKey(ctx, c.UserID, key)
		switch {
		case err == nil:
			return s.replay(ctx, prev, co, code)
		case !errors.Is(err, domain.ErrNotFound):
			return Confirmed{}, err
		}
	}
	cp, err := s.repo.CouponByCode(ctx, c.UserID, code)
	if errors.Is(err, domain.ErrNotFound) {
		return Confirmed{}, fmt.Errorf("%w: you hold no coupon %s", domain.ErrNotFound, code)
	}
	if err != nil {
		return Confirmed{}, err
	}
	discount, reason := cp.Apply(s.now(), co.Total)
	if err := reason.Err(); err != nil {
		return Confirmed{}, err
	}
	issued, err := s.issuer.IssueConfirmation(ctx, capability.Draft{
		Subject:     c.UserID,
		CheckoutID:  co.ID,
		Capability:  domain.Capability,
		Constraints: constraints(co.ID, cp.ID, discount),
		Settlement:  discount,
	})
	if err != nil {
		return Confirmed{}, fmt.Errorf("issue confirmation: %w", err)
	}
	sealed, err := s.sealer.Seal(issued.JTI, issued.Token)
	if err != nil {
		return Confirmed{}, fmt.Errorf("seal confirmation: %w", err)
	}
	stored, created, err := s.repo.SaveConfirmation(ctx, domain.Confirmation{
		JTI: issued.JTI, UserID: c.UserID, CheckoutID: co.ID, CouponID: cp.ID, Code: code,
		Discount: discount.AmountMinor, Currency: discount.Currency, IdempotencyKey: key,
		SealedToken: sealed, ExpiresAt: issued.ExpiresAt, CreatedAt: s.now(),
	})
	if err != nil {
		return Confirmed{}, err
	}
	if !created { // a concurrent retry with the same key won the race
		return s.replay(ctx, stored, co, code)
	}
	return Confirmed{Token: issued.Token, ExpiresAt: issued.ExpiresAt, Discount: discount, Coupon: cp}, nil
}

// replay returns the result of an earlier Confirm with the same key. It does
// not judge the coupon again: the token was issued, and Exercise judges it.
func (s *Service) replay(ctx context.Context, prev domain.Confirmation, co domain.Checkout, code string) (Confirmed, error) {
	if prev.CheckoutID != co.ID || prev.Code != code {
		return Confirmed{}, domain.ErrIdempotencyConflict
	}
	tok, err := s.sealer.Open(prev.JTI, prev.SealedToken)
	if err != nil {
		return Confirmed{}, fmt.Errorf("open stored confirmation: %w", err)
	}
	cp, err := s.repo.CouponByCode(ctx, prev.UserID, prev.Code)
	if err != nil {
		return Confirmed{}, err
	}
	return Confirmed{Token: tok, ExpiresAt: prev.ExpiresAt, Discount: prev.Settlement(), Coupon: cp}, nil
}

// constraints are Coupons' own references inside the token: opaque to
// OrderProcessing, checked against the record at Exercise. The hash binds
// checkout, coupon and discount together, so that no claim can be swapped
// for another record's.
func constraints(checkoutID, couponID string, discount money.Money) map[string]string {
	sum := sha256.Sum256([]byte(checkoutID + "\x00" + couponID + "\x00" +
		strconv.FormatInt(discount.AmountMinor, 10) + "\x00" + discount.Currency))
	return map[string]string{"coupon_id": couponID, "discount_sha256": hex.EncodeToString(sum[:])}
}

// check verifies a token's claims against the confirmation record Coupons
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
	if rec.UserID != t.Subject || rec.CheckoutID != t.CheckoutID || t.Settlement != rec.Settlement() {
		return domain.ErrMismatch
	}
	want := constraints(rec.CheckoutID, rec.CouponID, rec.Settlement())
	if len(t.Constraints) != len(want) {
		return fmt.Errorf("%w: constraints", domain.ErrMismatch)
	}
	for k, v := range want {
		if t.Constraints[k] != v {
			return fmt.Errorf("%w: constraint %s", domain.ErrMismatch, k)
		}
	}
	return nil
}

// Exercise redeems the coupon of a verified confirmation token for an order,
// once. The coupon's validity window is judged again at the current time.
func (s *Service) Exercise(ctx context.Context, t capability.Token, orderID string) (domain.Exercise, error) {
	if orderID == "" {
		return domain.Exercise{}, fmt.Errorf("%w: order_id is required", domain.ErrInvalidArgument)
	}
	if err := s.check(ctx, t); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Exercise(ctx, t.JTI, orderID, s.now())
}

// MaxReasonLen bounds a compensation reason, in characters.
const MaxReasonLen = 200

// Compensate makes the coupon of a verified confirmation token available
// again, or voids the token if it was never exercised.
func (s *Service) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (domain.Exercise, error) {
	switch {
	case orderID == "":
		return domain.Exercise{}, fmt.Errorf("%w: order_id is required", domain.ErrInvalidArgument)
	case !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxReasonLen:
		return domain.Exercise{}, fmt.Errorf("%w: reason must be valid UTF-8 of at most %d characters", domain.ErrInvalidArgument, MaxReasonLen)
	}
	if err := s.check(ctx, t); err != nil {
		return domain.Exercise{}, err
	}
	return s.repo.Compensate(ctx, t.JTI, orderID, reason, s.now())
}
