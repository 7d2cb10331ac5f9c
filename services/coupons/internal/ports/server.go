// Package ports serves Coupons over Connect: CouponsService for users and
// admins, and the domain's side of CapabilityService for OrderProcessing.
// Handlers are thin: proto in, use case, errors mapped in one place.
//
// Its rule: this is the only layer of the service that speaks Connect and
// the wire types; CapabilityService itself is capabilityrpc's, over this
// package's capability.Domain.
package ports

import (
	"context"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/money/moneypb"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/app"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
)

// Server implements couponsv1connect.CouponsServiceHandler and
// capability.Domain.
type Server struct {
	app       *app.Service
	checkouts *capabilityrpc.Checkouts
	errs      *rpcerr.Mapper
}

var (
	_ couponsv1connect.CouponsServiceHandler = (*Server)(nil)
	_ capability.Domain                      = (*Server)(nil)
)

// NewServer returns the handlers over the use cases. v verifies checkout
// tokens from OrderProcessing for the audience "coupons".
func NewServer(a *app.Service, checkouts *capabilityrpc.Checkouts, log *slog.Logger) *Server {
	return &Server{app: a, checkouts: checkouts, errs: capabilityrpc.Errors(log,
		rpcerr.Code{Err: domain.ErrCampaignConflict, Code: connect.CodeAlreadyExists},
		rpcerr.Code{Err: domain.ErrUnusable, Code: connect.CodeFailedPrecondition},
	)}
}

// Error maps a use-case error to a Connect error: the service's one error
// mapping.
func (s *Server) Error(ctx context.Context, err error) *connect.Error { return s.errs.Map(ctx, err) }

// caller is the request's verified user; see authn.RequireCaller.
func caller(ctx context.Context) (app.Caller, error) {
	c, err := authn.RequireCaller(ctx)
	return app.Caller{UserID: c.Subject, Admin: c.IsAdmin()}, err
}

// ListAvailableCoupons implements couponsv1connect.CouponsServiceHandler.
func (s *Server) ListAvailableCoupons(ctx context.Context, req *connect.Request[couponsv1.ListAvailableCouponsRequest]) (*connect.Response[couponsv1.ListAvailableCouponsResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var co *domain.Checkout
	if raw := req.Msg.GetCheckoutToken(); raw != "" {
		checkout, err := s.checkouts.Verify(ctx, raw, c.UserID)
		if err != nil {
			return nil, err
		}
		co = &checkout
	}
	listed, err := s.app.List(ctx, c, co)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	res := &couponsv1.ListAvailableCouponsResponse{}
	for _, l := range listed {
		p := couponProto(l.Coupon)
		p.Usable = l.Unusable == domain.ReasonNone
		p.UnusableReason = couponsv1.UnusableReason(l.Unusable)
		if co != nil && p.Usable {
			p.Discount = moneypb.Proto(l.Discount)
		}
		res.Coupons = append(res.Coupons, p)
	}
	return connect.NewResponse(res), nil
}

// ConfirmCoupon implements couponsv1connect.CouponsServiceHandler.
func (s *Server) ConfirmCoupon(ctx context.Context, req *connect.Request[couponsv1.ConfirmCouponRequest]) (*connect.Response[couponsv1.ConfirmCouponResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, co, err := s.checkouts.VerifyConfirm(ctx, req.Msg.GetCheckoutToken(), req.Msg.GetIdempotencyKey(), req.Header(), c.UserID)
	if err != nil {
		return nil, err
	}
	out, err := s.app.Confirm(ctx, c, co, req.Msg.GetCode(), key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	p := couponProto(out.Coupon)
	p.Usable, p.Discount = true, moneypb.Proto(out.Discount)
	return connect.NewResponse(&couponsv1.ConfirmCouponResponse{
		ConfirmationToken: out.Token,
		ExpiresAt:         timestamppb.New(out.ExpiresAt),
		Discount:          moneypb.Proto(out.Discount),
		Coupon:            p,
	}), nil
}

// GrantCoupon implements couponsv1connect.CouponsServiceHandler.
func (s *Server) GrantCoupon(ctx context.Context, req *connect.Request[couponsv1.GrantCouponRequest]) (*connect.Response[couponsv1.GrantCouponResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	campaign, err := campaignFromProto(req.Msg.GetCampaign())
	if err != nil {
		return nil, err
	}
	cp, err := s.app.Grant(ctx, c, req.Msg.GetUserId(), campaign, key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&couponsv1.GrantCouponResponse{Coupon: couponProto(cp)}), nil
}

// campaignFromProto converts the wire campaign. Its one currency is that of
// amount_off and minimum_spend, which must agree when both are set.
func campaignFromProto(p *couponsv1.Campaign) (domain.Campaign, error) {
	invalid := func(format string, args ...any) (domain.Campaign, error) {
		return domain.Campaign{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
	}
	if p == nil {
		return invalid("campaign is required")
	}
	var currency string
	var amountOff, minimum money.Money
	for _, m := range []struct {
		name string
		p    interface {
			GetAmountMinor() int64
			GetCurrency() string
		}
		out *money.Money
	}{{"amount_off", p.GetAmountOff(), &amountOff}, {"minimum_spend", p.GetMinimumSpend(), &minimum}} {
		if m.p.GetCurrency() == "" && m.p.GetAmountMinor() == 0 {
			continue
		}
		v := money.Money{AmountMinor: m.p.GetAmountMinor(), Currency: m.p.GetCurrency()}
		if err := v.Validate(); err != nil {
			return invalid("campaign.%s: %v", m.name, err)
		}
		if currency != "" && v.Currency != currency {
			return invalid("campaign.amount_off and campaign.minimum_spend must have one currency")
		}
		currency, *m.out = v.Currency, v
	}
	if currency == "" {
		return invalid("campaign needs a currency, in amount_off or minimum_spend")
	}
	if !p.GetValidFrom().IsValid() || !p.GetValidUntil().IsValid() {
		return invalid("campaign.valid_from and campaign.valid_until are required")
	}
	return domain.Campaign{
		Code:          p.GetCode(),
		Description:   p.GetDescription(),
		Kind:          domain.DiscountKind(p.GetKind()),
		AmountOff:     amountOff.AmountMinor,
		PercentOffBPS: p.GetPercentOffBps(),
		MinimumSpend:  minimum.AmountMinor,
		Currency:      currency,
		ValidFrom:     p.GetValidFrom().AsTime(),
		ValidUntil:    p.GetValidUntil().AsTime(),
	}, nil
}

func couponProto(cp domain.Coupon) *couponsv1.Coupon {
	c := cp.Campaign
	p := &couponsv1.Coupon{
		Code: c.Code,
		Campaign: &couponsv1.Campaign{
			Code:          c.Code,
			Description:   c.Description,
			Kind:          couponsv1.DiscountKind(c.Kind),
			PercentOffBps: c.PercentOffBPS,
			MinimumSpend:  moneypb.Proto(money.Money{AmountMinor: c.MinimumSpend, Currency: c.Currency}),
			ValidFrom:     timestamppb.New(c.ValidFrom),
			ValidUntil:    timestamppb.New(c.ValidUntil),
		},
		State: couponsv1.CouponState_COUPON_STATE_AVAILABLE,
	}
	if c.Kind == domain.DiscountFixed {
		p.Campaign.AmountOff = moneypb.Proto(money.Money{AmountMinor: c.AmountOff, Currency: c.Currency})
	}
	if cp.State == domain.CouponRedeemed {
		p.State = couponsv1.CouponState_COUPON_STATE_REDEEMED
	}
	return p
}

// Exercise implements capability.Domain.
func (s *Server) Exercise(ctx context.Context, t capability.Token, orderID string) (capability.Record, error) {
	x, err := s.app.Exercise(ctx, t, orderID)
	return record(x), err
}

// Compensate implements capability.Domain.
func (s *Server) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (capability.Record, error) {
	x, err := s.app.Compensate(ctx, t, orderID, reason)
	return record(x), err
}

func record(x domain.Exercise) capability.Record {
	return capability.Record{
		JTI:           x.JTI,
		Capability:    domain.Capability,
		OrderID:       x.OrderID,
		Compensated:   x.State == domain.ExerciseCompensated,
		Reference:     x.RedemptionID,
		Settlement:    money.Money{AmountMinor: x.Discount, Currency: x.Currency},
		AppliedAt:     x.AppliedAt,
		CompensatedAt: x.CompensatedAt,
	}
}
