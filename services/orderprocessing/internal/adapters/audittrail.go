package adapters

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
)

// TokenAudit gathers the audit trail of tokens across the services that
// saw them: OrderProcessing's own (Log) and each issuer's, asked through
// the capability protocol (CapabilityService AuditTrail), so that
// OrderProcessing needs to know nothing of a domain's rules.
type TokenAudit struct {
	Log *audit.Log
	// Issuers reaches each issuer's CapabilityService by name.
	Issuers map[string]capabilityv1connect.CapabilityServiceClient
}

// Gather returns the events req selects (exactly one of its keys, checked
// by the caller), ordered by time, then service and sequence, and the
// issuers that could not be asked; an error of OrderProcessing's own trail
// is returned as it is.
func (t TokenAudit) Gather(ctx context.Context, req *capabilityv1.AuditTrailRequest) ([]*capabilityv1.AuditEvent, []string, error) {
	var own []audit.Event
	var err error
	switch by := req.GetBy().(type) {
	case *capabilityv1.AuditTrailRequest_Jti:
		for _, iss := range slices.Sorted(maps.Keys(t.Issuers)) {
			evs, err := t.Log.ByJTI(ctx, iss, by.Jti)
			if err != nil {
				return nil, nil, err
			}
			own = append(own, evs...)
		}
	case *capabilityv1.AuditTrailRequest_OrderId:
		own, err = t.Log.ByOrder(ctx, by.OrderId)
	case *capabilityv1.AuditTrailRequest_Txn:
		own, err = t.Log.ByTxn(ctx, by.Txn)
	}
	if err != nil {
		return nil, nil, err
	}
	events := make([]*capabilityv1.AuditEvent, 0, len(own))
	for _, e := range own {
		events = append(events, eventProto(e))
	}
	var unreachable []string
	for _, iss := range slices.Sorted(maps.Keys(t.Issuers)) {
		res, err := t.Issuers[iss].AuditTrail(ctx, connect.NewRequest(req))
		if err != nil {
			unreachable = append(unreachable, iss)
			continue
		}
		events = append(events, res.Msg.GetEvents()...)
	}
	slices.SortStableFunc(events, func(a, b *capabilityv1.AuditEvent) int {
		return cmp.Or(a.GetAt().AsTime().Compare(b.GetAt().AsTime()), cmp.Compare(a.GetService(), b.GetService()),
			cmp.Compare(a.GetSeq(), b.GetSeq()))
	})
	return events, unreachable, nil
}

// eventProto converts e to the wire type (capabilityrpc.AuditEventProto's
// twin: OrderProcessing does not import the domains' transport).
func eventProto(e audit.Event) *capabilityv1.AuditEvent {
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
