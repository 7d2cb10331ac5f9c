package adapters

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"

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
	// Self is OrderProcessing's issuer name, the iss of the checkout
	// tokens it signs.
	Self string
	// Issuers reaches each issuer's CapabilityService by name.
	Issuers map[string]capabilityv1connect.CapabilityServiceClient
}

// Gather returns the events req selects (exactly one of its keys, checked
// by the caller), ordered by time, then service and sequence, and the
// issuers that could not be asked; an error of OrderProcessing's own trail
// is returned as it is.
//
// A jti is looked up under every issuer, OrderProcessing's own checkout
// tokens included. An order's timeline is the history of its checkout's
// tokens: the checkout tokens OrderProcessing issued for its checkout,
// and the confirmation tokens it consumed, which OrderProcessing's events
// of the order name and whose events are gathered by jti, here and at
// their issuer (so their issuance, and the refused replays of them, are
// there too); and what each issuer recorded of the order (a token it
// refused at Exercise whose jti could not be trusted). A txn is looked up
// everywhere.
func (t TokenAudit) Gather(ctx context.Context, req *capabilityv1.AuditTrailRequest) ([]*capabilityv1.AuditEvent, []string, error) {
	g := gathering{seen: map[string]bool{}}
	switch by := req.GetBy().(type) {
	case *capabilityv1.AuditTrailRequest_Jti:
		for _, iss := range append(slices.Sorted(maps.Keys(t.Issuers)), t.Self) {
			if err := t.token(ctx, &g, iss, by.Jti); err != nil {
				return nil, nil, err
			}
		}
	case *capabilityv1.AuditTrailRequest_OrderId:
		own, err := t.Log.ByOrder(ctx, by.OrderId)
		if err != nil {
			return nil, nil, err
		}
		g.add(own...)
		checkouts := map[string]bool{}
		for _, e := range own {
			if e.JTI != "" {
				if err := t.token(ctx, &g, e.Issuer, e.JTI); err != nil {
					return nil, nil, err
				}
			}
			checkouts[e.CheckoutID] = e.CheckoutID != ""
		}
		for co, ok := range checkouts {
			if !ok {
				continue
			}
			tokens, err := t.Log.CheckoutTokens(ctx, co)
			if err != nil {
				return nil, nil, err
			}
			g.add(tokens...)
		}
		for _, iss := range slices.Sorted(maps.Keys(t.Issuers)) {
			t.ask(ctx, &g, iss, req)
		}
	case *capabilityv1.AuditTrailRequest_Txn:
		own, err := t.Log.ByTxn(ctx, by.Txn)
		if err != nil {
			return nil, nil, err
		}
		g.add(own...)
		for _, iss := range slices.Sorted(maps.Keys(t.Issuers)) {
			t.ask(ctx, &g, iss, req)
		}
	}
	slices.SortStableFunc(g.events, func(a, b *capabilityv1.AuditEvent) int {
		return cmp.Or(a.GetAt().AsTime().Compare(b.GetAt().AsTime()), cmp.Compare(a.GetService(), b.GetService()),
			cmp.Compare(a.GetSeq(), b.GetSeq()))
	})
	return g.events, g.unreachable, nil
}

// token gathers the events of the token (iss, jti): OrderProcessing's and
// its issuer's.
func (t TokenAudit) token(ctx context.Context, g *gathering, iss, jti string) error {
	own, err := t.Log.ByJTI(ctx, iss, jti)
	if err != nil {
		return err
	}
	g.add(own...)
	if _, ok := t.Issuers[iss]; ok {
		t.ask(ctx, g, iss, &capabilityv1.AuditTrailRequest{By: &capabilityv1.AuditTrailRequest_Jti{Jti: jti}})
	}
	return nil
}

// ask adds the events issuer iss answers for req, or names iss unreachable.
func (t TokenAudit) ask(ctx context.Context, g *gathering, iss string, req *capabilityv1.AuditTrailRequest) {
	res, err := t.Issuers[iss].AuditTrail(ctx, connect.NewRequest(req))
	if err != nil {
		if !slices.Contains(g.unreachable, iss) {
			g.unreachable = append(g.unreachable, iss)
		}
		return
	}
	for _, e := range res.Msg.GetEvents() {
		g.addProto(e)
	}
}

// gathering is the events gathered so far, each once (by service and
// sequence number), and the issuers that could not be asked.
type gathering struct {
	events      []*capabilityv1.AuditEvent
	seen        map[string]bool
	unreachable []string
}

func (g *gathering) add(evs ...audit.Event) {
	for _, e := range evs {
		g.addProto(eventProto(e))
	}
}

func (g *gathering) addProto(e *capabilityv1.AuditEvent) {
	k := e.GetService() + "\x00" + strconv.FormatInt(e.GetSeq(), 10)
	if !g.seen[k] {
		g.seen[k] = true
		g.events = append(g.events, e)
	}
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
