package capabilityrpc_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// TestAuditTrail: the handler answers a domain's events of its own tokens
// by jti (its issuer only), order or txn, and refuses a missing or
// over-long key; a handler without a trail is Unimplemented.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	req := func(by any) *connect.Request[capabilityv1.AuditTrailRequest] {
		r := &capabilityv1.AuditTrailRequest{}
		switch v := by.(type) {
		case *capabilityv1.AuditTrailRequest_Jti:
			r.By = v
		case *capabilityv1.AuditTrailRequest_OrderId:
			r.By = v
		case *capabilityv1.AuditTrailRequest_Txn:
			r.By = v
		}
		return connect.NewRequest(r)
	}
	_, err := capabilityrpc.NewHandler(nil, nil, mapErr, slog.New(slog.DiscardHandler)).AuditTrail(t.Context(), req(nil))
	if connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("without a trail: %v", err)
	}
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		if err := audit.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		log := audit.New(db)
		at := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
		for _, e := range []audit.Event{
			{Service: "coupons", At: at, Action: audit.Issued, Issuer: "coupons", JTI: "j1", Txn: "t1", ExpiresAt: at.Add(time.Minute)},
			{Service: "coupons", At: at.Add(time.Second), Action: audit.Exercised, Issuer: "coupons", JTI: "j1", OrderID: "ord_1", Txn: "t2"},
			// Another issuer's jti in the same database is not this domain's.
			{Service: "coupons", At: at, Action: audit.Issued, Issuer: "points", JTI: "j1"},
		} {
			if _, err := log.Record(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
		h := capabilityrpc.NewHandler(nil, nil, mapErr, slog.New(slog.DiscardHandler)).Audit(&audit.Trail{Log: log, Service: "coupons"})
		for _, tc := range []struct {
			name string
			by   any
			want []string // actions
			code connect.Code
		}{
			{"by jti", &capabilityv1.AuditTrailRequest_Jti{Jti: "j1"}, []string{"issued", "exercised"}, 0},
			{"by order", &capabilityv1.AuditTrailRequest_OrderId{OrderId: "ord_1"}, []string{"exercised"}, 0},
			{"by txn", &capabilityv1.AuditTrailRequest_Txn{Txn: "t1"}, []string{"issued"}, 0},
			{"unknown jti", &capabilityv1.AuditTrailRequest_Jti{Jti: "j9"}, nil, 0},
			{"no key", nil, nil, connect.CodeInvalidArgument},
			{"empty jti", &capabilityv1.AuditTrailRequest_Jti{}, nil, connect.CodeInvalidArgument},
			{"long order", &capabilityv1.AuditTrailRequest_OrderId{OrderId: strings.Repeat("o", 65)}, nil, connect.CodeInvalidArgument},
			{"long txn", &capabilityv1.AuditTrailRequest_Txn{Txn: strings.Repeat("t", 65)}, nil, connect.CodeInvalidArgument},
		} {
			res, err := h.AuditTrail(t.Context(), req(tc.by))
			if connect.CodeOf(err) != tc.code && (tc.code != 0 || err != nil) {
				t.Errorf("%s: %v, want code %v", tc.name, err, tc.code)
				continue
			}
			if err != nil {
				continue
			}
			var got []string
			for _, e := range res.Msg.GetEvents() {
				got = append(got, e.GetAction())
				if e.GetIssuer() != "coupons" || e.GetHash() == "" || e.GetService() != "coupons" {
					t.Errorf("%s: event %v", tc.name, e)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: actions %v, want %v", tc.name, got, tc.want)
			}
		}
		// The wire form keeps every field, exp only when known.
		e := capabilityrpc.AuditEventProto(audit.Event{Service: "coupons", Seq: 3, At: at, Action: audit.Refused, Check: "replayed"})
		if e.GetExpiresAt() != nil || e.GetCheck() != "replayed" || e.GetSeq() != 3 || !e.GetAt().AsTime().Equal(at) {
			t.Errorf("AuditEventProto = %v", e)
		}
	})
}
