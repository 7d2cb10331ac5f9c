package capabilityrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/money/moneypb"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// MaxTokenBytes bounds a token in a request, before any parsing: the
// verifier's own limit (token.DefaultMaxTokenSize), which refuses a longer
// token with token.ErrTooLarge before reading it.
const MaxTokenBytes = token.DefaultMaxTokenSize

// Handler serves capability.v1.CapabilityService for one domain: it verifies
// that each confirmation token is the domain's own (signature through the
// verifier, typ, aud "order-processing", the domain's namespace; expiry for
// Exercise only) and hands it to the capability.Domain. Callers are
// authenticated by the server interceptors (authn.RequireWorkload), not here.
//
// Sealed constraints (package sealed) are opened before the domain sees the
// token, with the opener of [Handler.OpenSealed]: the domain checks them in
// the clear against its record. A token whose constraints cannot be opened
// (a key version no longer held, a value that does not authenticate) is
// refused as capability.ErrMismatch: the domain cannot tell it is one it
// issued so.
//
// A token it refuses, or the domain refuses, is recorded in the domain's
// audit trail ([Handler.Audit]) with the check that failed.
//
// Every call that reaches the domain is logged with its context ("exercise",
// "compensate": order, jti, code), and so with the txn of the transaction
// token the saga's call carries: the order's transaction reaches the
// domains' logs.
type Handler struct {
	verifier *token.Verifier
	domain   capability.Domain
	errs     func(context.Context, error) *connect.Error
	opener   *sealed.Sealer
	log      *slog.Logger
	trail    *audit.Trail // records refusals and answers AuditTrail; nil: neither
}

var _ capabilityv1connect.CapabilityServiceHandler = (*Handler)(nil)

// NewHandler returns the handler. v must trust only this domain as issuer of
// token.Confirmation (with its namespace); mapErr turns the domain's errors
// into Connect errors (the domain's single error mapping); log gets a line
// per call (wrap its handler with authn.NewLogHandler).
func NewHandler(v *token.Verifier, d capability.Domain, mapErr func(context.Context, error) *connect.Error, log *slog.Logger) *Handler {
	return &Handler{verifier: v, domain: d, errs: mapErr, log: log}
}

// logCall logs a call of procedure for order with token jti, and its code.
func (h *Handler) logCall(ctx context.Context, procedure, order, jti string, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	h.log.InfoContext(ctx, procedure, "order", order, "jti", jti, "code", code)
}

// OpenSealed makes h open sealed constraints with s, the domain's own
// sealer; it returns h. Without it, a token with sealed constraints is
// refused as capability.ErrMismatch.
func (h *Handler) OpenSealed(s *sealed.Sealer) *Handler {
	h.opener = s
	return h
}

// token verifies the confirmation token raw presented for order and opens
// its sealed constraints; a refusal is recorded in the audit trail.
func (h *Handler) token(ctx context.Context, raw, order string, allowExpired bool) (capability.Token, error) {
	if raw == "" {
		return capability.Token{}, connect.NewError(connect.CodeInvalidArgument, errors.New("confirmation_token is required"))
	}
	verify := token.Verify[token.ConfirmationClaims]
	if allowExpired {
		verify = token.VerifyAllowExpired[token.ConfirmationClaims]
	}
	c, err := verify(ctx, h.verifier, token.Confirmation, raw)
	if err != nil {
		cerr := rpcerr.Token(fmt.Errorf("confirmation token: %w", err), rpcerr.AsArgument())
		h.refused(ctx, capability.Token{}, order, err, cerr.Code())
		return capability.Token{}, cerr
	}
	t := FromClaims(c)
	if sealed.IsSealed(t.Constraints) {
		if h.opener == nil {
			err = fmt.Errorf("%w: sealed constraints and no key to open them", capability.ErrMismatch)
		} else if t.Constraints, err = h.opener.Open(t.Constraints); err != nil {
			err = fmt.Errorf("%w: %w", capability.ErrMismatch, err)
		}
		if err != nil {
			cerr := h.errs(ctx, err)
			h.refused(ctx, t, order, err, cerr.Code())
			return capability.Token{}, cerr
		}
	}
	return t, nil
}

// FromClaims converts verified confirmation claims to a capability.Token.
func FromClaims(c token.ConfirmationClaims) capability.Token {
	return capability.Token{
		JTI:          c.ID,
		Issuer:       c.Issuer,
		Subject:      c.Subject,
		CheckoutID:   c.OrderProcessingID,
		Capabilities: c.Capabilities,
		Constraints:  c.Constraints,
		Settlement:   money.Money{AmountMinor: c.Settlement.AmountMinor, Currency: c.Settlement.Currency},
		ExpiresAt:    c.ExpiresAt,
	}
}

func orderID(id string) error {
	if id == "" || len(id) > 64 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("order_id is required, at most 64 characters"))
	}
	return nil
}

// Exercise implements capabilityv1connect.CapabilityServiceHandler.
func (h *Handler) Exercise(ctx context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	if err := orderID(req.Msg.GetOrderId()); err != nil {
		return nil, err
	}
	t, err := h.token(ctx, req.Msg.GetConfirmationToken(), req.Msg.GetOrderId(), false)
	if err != nil {
		return nil, err
	}
	rec, err := h.domain.Exercise(ctx, t, req.Msg.GetOrderId())
	if err != nil {
		cerr := h.errs(ctx, err)
		h.refused(ctx, t, req.Msg.GetOrderId(), err, cerr.Code())
		h.logCall(ctx, "exercise", req.Msg.GetOrderId(), t.JTI, cerr)
		return nil, cerr
	}
	h.logCall(ctx, "exercise", req.Msg.GetOrderId(), t.JTI, nil)
	return connect.NewResponse(&capabilityv1.ExerciseResponse{Exercise: ExerciseProto(rec)}), nil
}

// Compensate implements capabilityv1connect.CapabilityServiceHandler.
func (h *Handler) Compensate(ctx context.Context, req *connect.Request[capabilityv1.CompensateRequest]) (*connect.Response[capabilityv1.CompensateResponse], error) {
	if err := orderID(req.Msg.GetOrderId()); err != nil {
		return nil, err
	}
	if err := capability.CheckReason(req.Msg.GetReason()); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	t, err := h.token(ctx, req.Msg.GetConfirmationToken(), req.Msg.GetOrderId(), true)
	if err != nil {
		return nil, err
	}
	rec, err := h.domain.Compensate(ctx, t, req.Msg.GetOrderId(), req.Msg.GetReason())
	if err != nil {
		cerr := h.errs(ctx, err)
		h.refused(ctx, t, req.Msg.GetOrderId(), err, cerr.Code())
		h.logCall(ctx, "compensate", req.Msg.GetOrderId(), t.JTI, cerr)
		return nil, cerr
	}
	h.logCall(ctx, "compensate", req.Msg.GetOrderId(), t.JTI, nil)
	return connect.NewResponse(&capabilityv1.CompensateResponse{Exercise: ExerciseProto(rec)}), nil
}

// ExerciseProto converts r to the wire type.
func ExerciseProto(r capability.Record) *capabilityv1.Exercise {
	x := &capabilityv1.Exercise{
		Jti:        r.JTI,
		Capability: r.Capability,
		OrderId:    r.OrderID,
		State:      capabilityv1.ExerciseState_EXERCISE_STATE_APPLIED,
		Reference:  r.Reference,
		Settlement: moneypb.Proto(r.Settlement),
	}
	if r.Compensated {
		x.State = capabilityv1.ExerciseState_EXERCISE_STATE_COMPENSATED
	}
	if !r.AppliedAt.IsZero() {
		x.AppliedAt = timestamppb.New(r.AppliedAt)
	}
	if !r.CompensatedAt.IsZero() {
		x.CompensatedAt = timestamppb.New(r.CompensatedAt)
	}
	return x
}
