package capabilityrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// MaxAuditKey bounds the jti, order id or txn an audit read is keyed by.
const MaxAuditKey = 64

// Audit makes h record the tokens it refuses in trail, the audit trail of
// the domain (trail.Service is its name, the iss of its tokens), and
// answer AuditTrail from it; it returns h. Without it, h records nothing
// and AuditTrail is Unimplemented.
func (h *Handler) Audit(trail *audit.Trail) *Handler {
	h.trail = trail
	return h
}

// refused records in the domain's audit trail that the confirmation token
// presented for order was refused (see refusalCheck), with what could be
// trusted of it (t: nothing when its signature did not verify) and the
// presenting workload as subject. A refusal that says nothing about the
// token (the issuer's keys unavailable, the database down) is not
// recorded; nor is one beyond the presenter's budget (audit.Trail.Refused).
func (h *Handler) refused(ctx context.Context, t capability.Token, order string, err error, code connect.Code) {
	check := refusalCheck(err, code)
	if h.trail == nil || check == "" {
		return
	}
	presenter, _ := authn.WorkloadFrom(ctx)
	aerr := h.trail.Refused(ctx, audit.Event{Issuer: t.Issuer, JTI: t.JTI, Kind: token.Confirmation.Name(),
		Subject: presenter, CheckoutID: t.CheckoutID, OrderID: order, Check: check, ExpiresAt: t.ExpiresAt})
	if aerr != nil {
		// The refusal stands; only its record is missing.
		h.log.ErrorContext(ctx, "audit: record refusal", "order", order, "jti", t.JTI, "check", check, "error", aerr)
	}
}

// refusalCheck names the check a refused confirmation token failed, for
// its audit event, from the refusal err and the code it is answered with:
// the token engine's label (token.Reason: "expired", "signature", ...),
// "sealed" for constraints that would not open, the shared sentinels'
// ("mismatch", "exercised_elsewhere", "voided", "unknown"), else the
// code ("failed_precondition": a card declined). "" for what says nothing
// about the token: a transient failure (unavailable, deadline exceeded,
// canceled, internal...) or a malformed request.
func refusalCheck(err error, code connect.Code) string {
	switch code {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled, connect.CodeInternal,
		connect.CodeUnknown, connect.CodeResourceExhausted, connect.CodeAborted:
		return ""
	}
	switch {
	case token.Reason(err) != "":
		return token.Reason(err)
	case errors.Is(err, sealed.ErrSealed):
		return "sealed"
	case errors.Is(err, capability.ErrMismatch):
		return "mismatch"
	case errors.Is(err, capability.ErrAlreadyExercised):
		return "exercised_elsewhere"
	case errors.Is(err, capability.ErrVoided):
		return "voided"
	case errors.Is(err, capability.ErrNotFound):
		return "unknown"
	case code == connect.CodeInvalidArgument:
		return ""
	}
	return code.String()
}

// AuditTrail implements capabilityv1connect.CapabilityServiceHandler: the
// domain's events of one of its tokens, an order or a txn.
func (h *Handler) AuditTrail(ctx context.Context, req *connect.Request[capabilityv1.AuditTrailRequest]) (*connect.Response[capabilityv1.AuditTrailResponse], error) {
	if h.trail == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this domain keeps no audit trail"))
	}
	var evs []audit.Event
	var err error
	switch by := req.Msg.GetBy().(type) {
	case *capabilityv1.AuditTrailRequest_Jti:
		if err := AuditKey("jti", by.Jti); err != nil {
			return nil, err
		}
		evs, err = h.trail.Log.ByJTI(ctx, h.trail.Service, by.Jti)
	case *capabilityv1.AuditTrailRequest_OrderId:
		if err := AuditKey("order_id", by.OrderId); err != nil {
			return nil, err
		}
		evs, err = h.trail.Log.ByOrder(ctx, by.OrderId)
	case *capabilityv1.AuditTrailRequest_Txn:
		if err := AuditKey("txn", by.Txn); err != nil {
			return nil, err
		}
		evs, err = h.trail.Log.ByTxn(ctx, by.Txn)
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("one of jti, order_id or txn is required"))
	}
	if err != nil {
		return nil, h.errs(ctx, err)
	}
	res := &capabilityv1.AuditTrailResponse{Events: make([]*capabilityv1.AuditEvent, len(evs))}
	for i, e := range evs {
		res.Events[i] = AuditEventProto(e)
	}
	return connect.NewResponse(res), nil
}

// AuditKey checks the key of an audit read: not empty, at most
// [MaxAuditKey] characters; else InvalidArgument naming it.
func AuditKey(name, v string) error {
	if v == "" || len(v) > MaxAuditKey {
		return connect.NewError(connect.CodeInvalidArgument, errors.New(name+" is required, at most 64 characters"))
	}
	return nil
}

// AuditEventProto converts e to the wire type.
func AuditEventProto(e audit.Event) *capabilityv1.AuditEvent {
	p := &capabilityv1.AuditEvent{
		Service: e.Service, Seq: e.Seq, At: timestamppb.New(e.At), Action: string(e.Action),
		Issuer: e.Issuer, Jti: e.JTI, Kind: e.Kind, Subject: e.Subject, CheckoutId: e.CheckoutID,
		OrderId: e.OrderID, Txn: e.Txn, Check: e.Check, Hash: e.Hash,
	}
	if !e.ExpiresAt.IsZero() {
		p.ExpiresAt = timestamppb.New(e.ExpiresAt)
	}
	return p
}
