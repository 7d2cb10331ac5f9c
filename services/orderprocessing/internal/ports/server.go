// Package ports serves OrderProcessingService over Connect. Handlers are
// thin: proto in, use case, errors mapped in one place.
package ports

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/money/moneypb"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// CheckoutTokenHeader carries the checkout token in StartCheckout's response
// too, for clients that read headers.
const CheckoutTokenHeader = "Checkout-Token"

// Server implements orderprocessingv1connect.OrderProcessingServiceHandler.
type Server struct {
	app   *app.Service
	audit TokenAudit
	errs  *rpcerr.Mapper
	// refused counts the token refusals the handlers answer (CountRefusals).
	refused atomic.Pointer[func(error) error]
}

var _ orderprocessingv1connect.OrderProcessingServiceHandler = (*Server)(nil)

// TokenAudit gathers the token audit trail across the services
// (adapters.TokenAudit).
type TokenAudit interface {
	Gather(ctx context.Context, req *capabilityv1.AuditTrailRequest) ([]*capabilityv1.AuditEvent, []string, error)
}

// NewServer returns the handlers over the use cases and the audit trail.
func NewServer(a *app.Service, audit TokenAudit, log *slog.Logger) *Server {
	return &Server{app: a, audit: audit, errs: rpcerr.New(log,
		rpcerr.Code{Err: domain.ErrInvalidArgument, Code: connect.CodeInvalidArgument},
		rpcerr.Code{Err: domain.ErrIdempotencyConflict, Code: connect.CodeInvalidArgument},
		// Not found and not yours are one answer, so ids cannot be probed.
		rpcerr.Code{Err: domain.ErrNotFound, Code: connect.CodePermissionDenied},
		rpcerr.Code{Err: domain.ErrCheckoutClosed, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrSettlement, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrEnvelope, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: replay.ErrReplayed, Code: connect.CodeAlreadyExists},
		rpcerr.Code{Err: domain.ErrTooManyWatchers, Code: connect.CodeResourceExhausted},
		rpcerr.Code{Err: domain.ErrNotStuck, Code: connect.CodeFailedPrecondition},
	)}
}

// CountRefusals makes every error the handlers answer pass through count,
// which counts the token refusals among them (metrics.Registry.Refused:
// each confirmation token PlaceOrder refuses, by its token.Reason, and
// replays) and returns the error to answer.
func (s *Server) CountRefusals(count func(error) error) { s.refused.Store(&count) }

// error maps every failure of a handler in one place. A confirmation token
// the token engine refused (token.ErrInvalid, whichever check, or its
// issuer's keys unavailable) is an argument of PlaceOrder: rpcerr.Token with
// AsArgument, expired -> FailedPrecondition (get a fresh confirmation), any
// other defect -> InvalidArgument. A replayed token, and everything else,
// goes through the service's Mapper.
func (s *Server) error(ctx context.Context, err error) error {
	var mapped error
	if !errors.Is(err, token.ErrReplayed) && (errors.Is(err, token.ErrInvalid) || errors.Is(err, keys.ErrUnavailable)) {
		mapped = rpcerr.Token(err, rpcerr.AsArgument())
	} else {
		mapped = s.errs.Map(ctx, err)
	}
	if count := s.refused.Load(); count != nil {
		return (*count)(mapped)
	}
	return mapped
}

// caller is the request's verified user; see authn.RequireCaller.
func caller(ctx context.Context) (app.Caller, error) {
	c, err := authn.RequireCaller(ctx)
	return app.Caller{UserID: c.Subject, Admin: c.IsAdmin(), Txn: c.Txn, TraceParent: telemetry.TraceParent(ctx)}, err
}

// ListProducts implements the handler interface.
func (s *Server) ListProducts(ctx context.Context, _ *connect.Request[orderprocessingv1.ListProductsRequest]) (*connect.Response[orderprocessingv1.ListProductsResponse], error) {
	if _, err := caller(ctx); err != nil {
		return nil, err
	}
	products, err := s.app.Products(ctx)
	if err != nil {
		return nil, s.error(ctx, err)
	}
	res := &orderprocessingv1.ListProductsResponse{}
	for _, p := range products {
		res.Products = append(res.Products, &orderprocessingv1.Product{
			Sku: p.SKU, Name: p.Name, Description: p.Description, UnitPrice: moneypb.Proto(p.UnitPrice),
		})
	}
	slices.SortFunc(res.Products, func(a, b *orderprocessingv1.Product) int { return compare(a.GetSku(), b.GetSku()) })
	return connect.NewResponse(res), nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// StartCheckout implements the handler interface.
func (s *Server) StartCheckout(ctx context.Context, req *connect.Request[orderprocessingv1.StartCheckoutRequest]) (*connect.Response[orderprocessingv1.StartCheckoutResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.error(ctx, err)
	}
	items := make([]domain.CartItem, len(req.Msg.GetItems()))
	for i, it := range req.Msg.GetItems() {
		items[i] = domain.CartItem{SKU: it.GetSku(), Quantity: it.GetQuantity()}
	}
	co, tok, err := s.app.StartCheckout(ctx, c, items, key)
	if err != nil {
		return nil, s.error(ctx, err)
	}
	res := connect.NewResponse(&orderprocessingv1.StartCheckoutResponse{Checkout: checkoutProto(co), CheckoutToken: tok})
	if tok != "" {
		res.Header().Set(CheckoutTokenHeader, tok)
	}
	return res, nil
}

// PlaceOrder implements the handler interface.
func (s *Server) PlaceOrder(ctx context.Context, req *connect.Request[orderprocessingv1.PlaceOrderRequest]) (*connect.Response[orderprocessingv1.PlaceOrderResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, err := idempotency.Require(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.error(ctx, err)
	}
	o, err := s.app.PlaceOrder(ctx, c, req.Msg.GetCheckoutId(), req.Msg.GetConfirmationTokens(), key)
	if err != nil {
		return nil, s.error(ctx, err)
	}
	return connect.NewResponse(&orderprocessingv1.PlaceOrderResponse{Order: orderProto(o)}), nil
}

// GetOrder implements the handler interface.
func (s *Server) GetOrder(ctx context.Context, req *connect.Request[orderprocessingv1.GetOrderRequest]) (*connect.Response[orderprocessingv1.GetOrderResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.app.Order(ctx, c, req.Msg.GetOrderId())
	if err != nil {
		return nil, s.error(ctx, err)
	}
	return connect.NewResponse(&orderprocessingv1.GetOrderResponse{Order: orderProto(o)}), nil
}

// WatchOrder implements the handler interface.
func (s *Server) WatchOrder(ctx context.Context, req *connect.Request[orderprocessingv1.WatchOrderRequest], stream *connect.ServerStream[orderprocessingv1.WatchOrderResponse]) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	err = s.app.Watch(ctx, c, req.Msg.GetOrderId(), func(o domain.Order) error {
		return stream.Send(&orderprocessingv1.WatchOrderResponse{Order: orderProto(o)})
	})
	if err != nil {
		return s.error(ctx, err)
	}
	return nil
}

// ListOrders implements the handler interface.
func (s *Server) ListOrders(ctx context.Context, req *connect.Request[orderprocessingv1.ListOrdersRequest]) (*connect.Response[orderprocessingv1.ListOrdersResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	orders, next, err := s.app.Orders(ctx, c, req.Msg.GetUserId(), req.Msg.GetPageToken(), int(req.Msg.GetPageSize()))
	if err != nil {
		return nil, s.error(ctx, err)
	}
	res := &orderprocessingv1.ListOrdersResponse{NextPageToken: next}
	for _, o := range orders {
		res.Orders = append(res.Orders, orderProto(o))
	}
	return connect.NewResponse(res), nil
}

// CancelCheckout implements the handler interface.
func (s *Server) CancelCheckout(ctx context.Context, req *connect.Request[orderprocessingv1.CancelCheckoutRequest]) (*connect.Response[orderprocessingv1.CancelCheckoutResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header()); err != nil {
		return nil, s.error(ctx, err)
	}
	co, err := s.app.CancelCheckout(ctx, c, req.Msg.GetCheckoutId())
	if err != nil {
		return nil, s.error(ctx, err)
	}
	return connect.NewResponse(&orderprocessingv1.CancelCheckoutResponse{Checkout: checkoutProto(co)}), nil
}

func linesProto(lines []domain.Line) []*orderprocessingv1.Line {
	out := make([]*orderprocessingv1.Line, len(lines))
	for i, l := range lines {
		out[i] = &orderprocessingv1.Line{Sku: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPrice: moneypb.Proto(l.UnitPrice), LineTotal: moneypb.Proto(l.LineTotal)}
	}
	return out
}

func checkoutProto(c domain.Checkout) *orderprocessingv1.Checkout {
	return &orderprocessingv1.Checkout{
		Id: c.ID, UserId: c.UserID, Lines: linesProto(c.Lines), Total: moneypb.Proto(c.Total),
		Status:    orderprocessingv1.CheckoutStatus(c.StatusAt(time.Now())),
		CreatedAt: timestamppb.New(c.CreatedAt), ExpiresAt: timestamppb.New(c.ExpiresAt), OrderId: c.OrderID,
	}
}

func orderProto(o domain.Order) *orderprocessingv1.Order {
	p := &orderprocessingv1.Order{
		Id: o.ID, CheckoutId: o.CheckoutID, UserId: o.UserID, Lines: linesProto(o.Lines), Total: moneypb.Proto(o.Total),
		Status: orderprocessingv1.OrderStatus(o.Status), FailureReason: o.FailureReason,
		CreatedAt: timestamppb.New(o.CreatedAt), UpdatedAt: timestamppb.New(o.UpdatedAt), Version: o.Version,
	}
	for _, st := range o.Steps {
		p.Steps = append(p.Steps, &orderprocessingv1.Step{
			Capability: st.Capability, Issuer: st.Issuer, Stage: int32(st.Stage), State: orderprocessingv1.StepState(st.State),
			Settlement: moneypb.Proto(st.Settlement), Reference: st.Reference, Attempts: int32(st.Attempts), LastError: st.LastError,
		})
	}
	return p
}

// GetTokenAudit implements the handler interface: admins only, like the
// operator's RPCs; anyone else is PermissionDenied.
func (s *Server) GetTokenAudit(ctx context.Context, req *connect.Request[orderprocessingv1.GetTokenAuditRequest]) (*connect.Response[orderprocessingv1.GetTokenAuditResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.Admin {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("the token audit trail is for admins"))
	}
	q := &capabilityv1.AuditTrailRequest{}
	name, key := "", ""
	switch by := req.Msg.GetBy().(type) {
	case *orderprocessingv1.GetTokenAuditRequest_Jti:
		name, key, q.By = "jti", by.Jti, &capabilityv1.AuditTrailRequest_Jti{Jti: by.Jti}
	case *orderprocessingv1.GetTokenAuditRequest_OrderId:
		name, key, q.By = "order_id", by.OrderId, &capabilityv1.AuditTrailRequest_OrderId{OrderId: by.OrderId}
	case *orderprocessingv1.GetTokenAuditRequest_Txn:
		name, key, q.By = "txn", by.Txn, &capabilityv1.AuditTrailRequest_Txn{Txn: by.Txn}
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("one of jti, order_id or txn is required"))
	}
	if key == "" || len(key) > maxAuditKey {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New(name+" is required, at most 64 characters"))
	}
	events, unreachable, err := s.audit.Gather(ctx, q)
	if err != nil {
		return nil, s.error(ctx, err)
	}
	return connect.NewResponse(&orderprocessingv1.GetTokenAuditResponse{Events: events, UnreachableIssuers: unreachable}), nil
}

// maxAuditKey bounds the key of an audit read, as every issuer bounds it.
const maxAuditKey = 64
