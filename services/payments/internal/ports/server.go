// Package ports serves Payments over Connect: PaymentsService for users and
// admins, and the domain's side of CapabilityService for OrderProcessing.
// Handlers are thin: proto in, use case, errors mapped in one place.
//
// Its rule: this is the only layer of the service that speaks Connect and
// the wire types; CapabilityService itself is capabilityrpc's, over this
// package's capability.Domain.
//
// A card number reaches AddPaymentMethod and goes straight to the use case;
// no handler logs a request or returns more of a card than its brand and
// last four digits.
package ports

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/money/moneypb"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/app"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

// Server implements paymentsv1connect.PaymentsServiceHandler and
// capability.Domain.
type Server struct {
	app       *app.Service
	checkouts *capabilityrpc.Checkouts
	errs      *rpcerr.Mapper
	log       *slog.Logger
}

var (
	_ paymentsv1connect.PaymentsServiceHandler = (*Server)(nil)
	_ capability.Domain                        = (*Server)(nil)
)

// NewServer returns the handlers over the use cases. v verifies checkout
// tokens from OrderProcessing for the audience "payments".
func NewServer(a *app.Service, checkouts *capabilityrpc.Checkouts, log *slog.Logger) *Server {
	return &Server{app: a, checkouts: checkouts, log: log, errs: capabilityrpc.Errors(log,
		rpcerr.Code{Err: domain.ErrExceedsTotal, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrCardExpired, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrDeclined, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrCaptureFailed, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrHoldCaptured, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrProcessorUnavailable, Code: connect.CodeUnavailable},
	)}
}

// Error maps a use-case error to a Connect error: the service's one error
// mapping.
func (s *Server) Error(ctx context.Context, err error) *connect.Error {
	if errors.Is(err, domain.ErrProcessorUnavailable) {
		// What failed underneath (the processor's transport or storage) is
		// none of the client's business: log it, answer with the sentinel.
		s.log.WarnContext(ctx, "payment processor unavailable", "err", err)
		err = domain.ErrProcessorUnavailable
	}
	return s.errs.Map(ctx, err)
}

// Part of a request's remaining deadline is kept back from the use case, so
// that a processor that does not answer in time turns into Unavailable (retry
// with the same idempotency key) that still reaches the caller, instead of the
// caller's own deadline cutting the call off with no answer at all.
const (
	replyReserveShare = 4           // a quarter of what remains
	maxReplyReserve   = time.Second // but no more than this
)

// withReplyReserve returns ctx with its deadline, if any, moved earlier by
// the reply reserve.
func withReplyReserve(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	reserve := max(0, min(time.Until(deadline)/replyReserveShare, maxReplyReserve))
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}

// caller is the request's verified user; see authn.RequireCaller.
func caller(ctx context.Context) (app.Caller, error) {
	c, err := authn.RequireCaller(ctx)
	return app.Caller{UserID: c.Subject, Admin: c.IsAdmin()}, err
}

// ListPaymentMethods implements paymentsv1connect.PaymentsServiceHandler.
func (s *Server) ListPaymentMethods(ctx context.Context, _ *connect.Request[paymentsv1.ListPaymentMethodsRequest]) (*connect.Response[paymentsv1.ListPaymentMethodsResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	methods, err := s.app.ListPaymentMethods(ctx, c)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	res := &paymentsv1.ListPaymentMethodsResponse{}
	for _, m := range methods {
		res.PaymentMethods = append(res.PaymentMethods, methodProto(m))
	}
	return connect.NewResponse(res), nil
}

// ConfirmPayment implements paymentsv1connect.PaymentsServiceHandler.
func (s *Server) ConfirmPayment(ctx context.Context, req *connect.Request[paymentsv1.ConfirmPaymentRequest]) (*connect.Response[paymentsv1.ConfirmPaymentResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, co, err := s.checkouts.VerifyConfirm(ctx, req.Msg.GetCheckoutToken(), req.Msg.GetIdempotencyKey(), req.Header(), c.UserID)
	if err != nil {
		return nil, err
	}
	p := req.Msg.GetAmount()
	if p == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("amount is required"))
	}
	ctx, cancel := withReplyReserve(ctx)
	defer cancel()
	out, err := s.app.ConfirmPayment(ctx, c, co,
		req.Msg.GetPaymentMethodId(), moneypb.FromProto(p), key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&paymentsv1.ConfirmPaymentResponse{
		ConfirmationToken: out.Token,
		ExpiresAt:         timestamppb.New(out.ExpiresAt),
		Amount:            moneypb.Proto(out.Amount),
		AuthorizationId:   out.AuthorizationID,
		PaymentMethod:     methodProto(out.Method),
	}), nil
}

// AddPaymentMethod implements paymentsv1connect.PaymentsServiceHandler.
func (s *Server) AddPaymentMethod(ctx context.Context, req *connect.Request[paymentsv1.AddPaymentMethodRequest]) (*connect.Response[paymentsv1.AddPaymentMethodResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	ctx, cancel := withReplyReserve(ctx)
	defer cancel()
	m, err := s.app.AddPaymentMethod(ctx, c, app.NewPaymentMethod{
		UserID:         req.Msg.GetUserId(),
		CardNumber:     req.Msg.GetCardNumber(),
		ExpiryMonth:    int(req.Msg.GetExpiryMonth()),
		ExpiryYear:     int(req.Msg.GetExpiryYear()),
		Label:          req.Msg.GetLabel(),
		IdempotencyKey: key,
	})
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&paymentsv1.AddPaymentMethodResponse{PaymentMethod: methodProto(m)}), nil
}

// methodProto is the safe view of a stored card: the processor's reference
// stays inside, and the number was never kept.
func methodProto(m domain.PaymentMethod) *paymentsv1.PaymentMethod {
	return &paymentsv1.PaymentMethod{
		Id:          m.ID,
		Brand:       string(m.Brand),
		Last4:       m.Last4,
		ExpiryMonth: int32(m.ExpiryMonth),
		ExpiryYear:  int32(m.ExpiryYear),
		Label:       m.Label,
		CreatedAt:   timestamppb.New(m.CreatedAt),
	}
}

// Exercise implements capability.Domain: it captures the hold.
func (s *Server) Exercise(ctx context.Context, t capability.Token, orderID string) (capability.Record, error) {
	ctx, cancel := withReplyReserve(ctx)
	defer cancel()
	x, err := s.app.Exercise(ctx, t, orderID)
	return record(x), err
}

// Compensate implements capability.Domain: it refunds the capture, or voids
// the hold when it was never captured.
func (s *Server) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (capability.Record, error) {
	ctx, cancel := withReplyReserve(ctx)
	defer cancel()
	x, err := s.app.Compensate(ctx, t, orderID, reason)
	return record(x), err
}

// record reports the capture as the effect's reference; it is empty for a
// hold voided before it was captured.
func record(x domain.Exercise) capability.Record {
	return capability.Record{
		JTI:           x.JTI,
		Capability:    domain.Capability,
		OrderID:       x.OrderID,
		Compensated:   x.State == domain.ExerciseCompensated,
		Reference:     x.CaptureID,
		Settlement:    x.Amount,
		AppliedAt:     x.AppliedAt,
		CompensatedAt: x.CompensatedAt,
	}
}
