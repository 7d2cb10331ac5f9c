package capabilityrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
)

// MaxAuditKey bounds the jti, order id or txn an audit read is keyed by.
const MaxAuditKey = 64

// Audit makes h answer AuditTrail from log, the audit trail of the domain
// issuer (its name, the iss of its tokens); it returns h. Without it,
// AuditTrail is Unimplemented.
func (h *Handler) Audit(log *audit.Log, issuer string) *Handler {
	h.audit, h.issuer = log, issuer
	return h
}

// AuditTrail implements capabilityv1connect.CapabilityServiceHandler: the
// domain's events of one of its tokens, an order or a txn.
func (h *Handler) AuditTrail(ctx context.Context, req *connect.Request[capabilityv1.AuditTrailRequest]) (*connect.Response[capabilityv1.AuditTrailResponse], error) {
	if h.audit == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this domain keeps no audit trail"))
	}
	var evs []audit.Event
	var err error
	switch by := req.Msg.GetBy().(type) {
	case *capabilityv1.AuditTrailRequest_Jti:
		if err := AuditKey("jti", by.Jti); err != nil {
			return nil, err
		}
		evs, err = h.audit.ByJTI(ctx, h.issuer, by.Jti)
	case *capabilityv1.AuditTrailRequest_OrderId:
		if err := AuditKey("order_id", by.OrderId); err != nil {
			return nil, err
		}
		evs, err = h.audit.ByOrder(ctx, by.OrderId)
	case *capabilityv1.AuditTrailRequest_Txn:
		if err := AuditKey("txn", by.Txn); err != nil {
			return nil, err
		}
		evs, err = h.audit.ByTxn(ctx, by.Txn)
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
