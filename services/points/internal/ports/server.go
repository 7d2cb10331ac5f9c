// Package ports serves Points over Connect: PointsService for users and
// admins, and the domain's side of CapabilityService for OrderProcessing.
// Handlers are thin: proto in, use case, errors mapped in one place.
//
// Its rule: this is the only layer of the service that speaks Connect and
// the wire types; CapabilityService itself is capabilityrpc's, over this
// package's capability.Domain.
package ports

import (
	"context"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/money/moneypb"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/services/points/internal/app"
	"github.com/tokenrelay/tokenrelay/services/points/internal/domain"
)

// Server implements pointsv1connect.PointsServiceHandler and
// capability.Domain.
type Server struct {
	app       *app.Service
	checkouts *capabilityrpc.Checkouts
	errs      *rpcerr.Mapper
}

var (
	_ pointsv1connect.PointsServiceHandler = (*Server)(nil)
	_ capability.Domain                    = (*Server)(nil)
)

// NewServer returns the handlers over the use cases. v verifies checkout
// tokens from OrderProcessing for the audience "points".
func NewServer(a *app.Service, checkouts *capabilityrpc.Checkouts, log *slog.Logger) *Server {
	return &Server{app: a, checkouts: checkouts, errs: capabilityrpc.Errors(log,
		rpcerr.Code{Err: domain.ErrInsufficientPoints, Code: connect.CodeFailedPrecondition},
		rpcerr.Code{Err: domain.ErrExceedsTotal, Code: connect.CodeFailedPrecondition},
	)}
}

// caller is the request's verified user; see authn.RequireCaller.
func caller(ctx context.Context) (app.Caller, error) {
	c, err := authn.RequireCaller(ctx)
	return app.Caller{UserID: c.Subject, Admin: c.IsAdmin()}, err
}

// Error maps a use-case error to a Connect error: the service's one error
// mapping.
func (s *Server) Error(ctx context.Context, err error) *connect.Error { return s.errs.Map(ctx, err) }

// GetBalance implements pointsv1connect.PointsServiceHandler.
func (s *Server) GetBalance(ctx context.Context, req *connect.Request[pointsv1.GetBalanceRequest]) (*connect.Response[pointsv1.GetBalanceResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	balance, entries, err := s.app.Balance(ctx, c, int(req.Msg.GetRecentEntries()))
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	res := &pointsv1.GetBalanceResponse{Balance: balance}
	for _, e := range entries {
		res.Entries = append(res.Entries, entryProto(e))
	}
	return connect.NewResponse(res), nil
}

// ConfirmPoints implements pointsv1connect.PointsServiceHandler.
func (s *Server) ConfirmPoints(ctx context.Context, req *connect.Request[pointsv1.ConfirmPointsRequest]) (*connect.Response[pointsv1.ConfirmPointsResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, co, err := s.checkouts.VerifyConfirm(ctx, req.Msg.GetCheckoutToken(), req.Msg.GetIdempotencyKey(), req.Header(), c.UserID)
	if err != nil {
		return nil, err
	}
	out, err := s.app.Confirm(ctx, c, co, req.Msg.GetPoints(), key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&pointsv1.ConfirmPointsResponse{
		ConfirmationToken: out.Token,
		ExpiresAt:         timestamppb.New(out.ExpiresAt),
		Value:             moneypb.Proto(out.Value),
		RemainingBalance:  out.RemainingBalance,
	}), nil
}

// GrantPoints implements pointsv1connect.PointsServiceHandler.
func (s *Server) GrantPoints(ctx context.Context, req *connect.Request[pointsv1.GrantPointsRequest]) (*connect.Response[pointsv1.GrantPointsResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, err := idempotency.Key(req.Msg.GetIdempotencyKey(), req.Header())
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	e, err := s.app.Grant(ctx, c, req.Msg.GetUserId(), req.Msg.GetPoints(), req.Msg.GetReason(), key)
	if err != nil {
		return nil, s.Error(ctx, err)
	}
	return connect.NewResponse(&pointsv1.GrantPointsResponse{Balance: e.BalanceAfter, Entry: entryProto(e)}), nil
}

// Exercise implements capability.Domain.
func (s *Server) Exercise(ctx context.Context, t capability.Token, orderID string) (capability.Record, error) {
	x, err := s.app.Exercise(ctx, t, orderID)
	if err != nil {
		return capability.Record{}, err
	}
	return record(x), nil
}

// Compensate implements capability.Domain.
func (s *Server) Compensate(ctx context.Context, t capability.Token, orderID, reason string) (capability.Record, error) {
	x, err := s.app.Compensate(ctx, t, orderID, reason)
	if err != nil {
		return capability.Record{}, err
	}
	return record(x), nil
}

func record(x domain.Exercise) capability.Record {
	return capability.Record{
		JTI:           x.JTI,
		Capability:    domain.Capability,
		OrderID:       x.OrderID,
		Compensated:   x.State == domain.ExerciseCompensated,
		Reference:     x.EntryID,
		Settlement:    domain.Confirmation{Points: x.Points, Currency: x.Currency}.Value(),
		AppliedAt:     x.AppliedAt,
		CompensatedAt: x.CompensatedAt,
	}
}

var entryKinds = map[domain.EntryKind]pointsv1.EntryKind{
	domain.EntryGrant:  pointsv1.EntryKind_ENTRY_KIND_GRANT,
	domain.EntrySpend:  pointsv1.EntryKind_ENTRY_KIND_SPEND,
	domain.EntryRefund: pointsv1.EntryKind_ENTRY_KIND_REFUND,
}

func entryProto(e domain.Entry) *pointsv1.LedgerEntry {
	return &pointsv1.LedgerEntry{
		Id:        e.ID,
		Kind:      entryKinds[e.Kind],
		Delta:     e.Delta,
		OrderId:   e.OrderID,
		Reason:    e.Reason,
		CreatedAt: timestamppb.New(e.CreatedAt),
	}
}
