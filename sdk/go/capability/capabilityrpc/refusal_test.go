package capabilityrpc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// refusing is a capability.Domain that refuses every call with err.
type refusing struct{ err error }

func (r refusing) Exercise(context.Context, capability.Token, string) (capability.Record, error) {
	return capability.Record{}, r.err
}

func (r refusing) Compensate(context.Context, capability.Token, string, string) (capability.Record, error) {
	return capability.Record{}, r.err
}

// TestRefusalsRecorded: a confirmation token the handler refuses (a bad
// signature: nothing of it trusted) or the domain refuses (exercised for
// another order, a declined card) is recorded in the domain's audit trail
// with the check, the order and, once its signature verified, its jti; a
// transient failure and a malformed request are not; and beyond the
// presenter's budget refusals are counted, not recorded, the moment the
// budget is spent logged once.
func TestRefusalsRecorded(t *testing.T) {
	t.Parallel()
	v, is, _ := paymentsKeys(t)
	tok := func() (string, string) {
		iss, err := capabilityrpc.TokenIssuer{Issuer: is}.IssueConfirmation(t.Context(), capability.Draft{Subject: "usr_1", CheckoutID: "op_1",
			Capability: "payments:capture", Settlement: money.Money{AmountMinor: 100, Currency: "EUR"}})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Token, iss.JTI
	}
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		if err := audit.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		trail := &audit.Trail{Log: audit.New(db), Service: "payments",
			Refusals: audit.NewRefusalBudget(4, time.Hour, 16, log)}
		exercise := func(d capability.Domain, raw, order string) error {
			_, err := capabilityrpc.NewHandler(v, d, mapErr, log).Audit(trail).Exercise(t.Context(),
				connect.NewRequest(&capabilityv1.ExerciseRequest{ConfirmationToken: raw, OrderId: order}))
			return err
		}
		good, goodJTI := tok()
		forged := good[:strings.LastIndexByte(good, '.')+1] + "AAAA"
		for _, tc := range []struct {
			name, raw, order string
			domain           capability.Domain
			check, jti       string // "": nothing recorded
		}{
			{"bad signature", forged, "ord_1", refusing{}, "signature", ""},
			{"exercised for another order", good, "ord_2", refusing{fmt.Errorf("%w: ord_0", capability.ErrAlreadyExercised)}, "exercised_elsewhere", goodJTI},
			{"voided", good, "ord_3", refusing{capability.ErrVoided}, "voided", goodJTI},
			{"the domain failing", good, "ord_5", refusing{errors.New("disk full")}, "", ""},
			{"missing token", "", "ord_4", refusing{}, "", ""},
		} {
			err := exercise(tc.domain, tc.raw, tc.order)
			if err == nil {
				t.Fatalf("%s: accepted", tc.name)
			}
			evs, rerr := trail.Log.ByOrder(t.Context(), tc.order)
			if rerr != nil {
				t.Fatal(rerr)
			}
			switch {
			case tc.check == "" && len(evs) != 0:
				t.Errorf("%s (%v): recorded %+v", tc.name, err, evs)
			case tc.check != "" && (len(evs) != 1 || evs[0].Action != audit.Refused || evs[0].Check != tc.check || evs[0].JTI != tc.jti):
				t.Errorf("%s (%v): recorded %+v, want one refusal %q of jti %q", tc.name, err, evs, tc.check, tc.jti)
			}
		}
		// Three refusals recorded: one left of the budget of 4.
		for range 3 {
			if err := exercise(refusing{}, forged, "ord_9"); err == nil {
				t.Fatal("a forged token accepted")
			}
		}
		evs, err := trail.Log.ByOrder(t.Context(), "ord_9")
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || trail.Refusals.Unrecorded() != 2 || strings.Count(logs.String(), "spent its budget of recorded refusals") != 1 {
			t.Fatalf("beyond the budget: %d recorded, %d unrecorded; log:\n%s", len(evs), trail.Refusals.Unrecorded(), logs.String())
		}
	})
}

// TestCheckoutRefusalsRecorded: a checkout token refused at a domain's
// Confirm (a bad signature, another user's checkout) is recorded in the
// domain's audit trail with the check and the presenting user, its jti
// once its signature verified; a missing token is not.
func TestCheckoutRefusalsRecorded(t *testing.T) {
	t.Parallel()
	v, _, op := paymentsKeys(t)
	raw, claims, err := token.Issue(t.Context(), op, token.Checkout, token.CheckoutClaims{
		Registered:        token.Registered{Subject: "usr_1", Audience: []string{"payments"}, ExpiresAt: time.Now().Add(time.Hour)},
		OrderProcessingID: "op_1", AmountMinor: 100, Currency: "EUR",
	})
	if err != nil {
		t.Fatal(err)
	}
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		if err := audit.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		log := audit.New(db)
		checkouts := capabilityrpc.NewCheckouts(v, &audit.Trail{Log: log, Service: "payments"}, slog.New(slog.DiscardHandler))
		if co, err := checkouts.Verify(t.Context(), raw, "usr_1"); err != nil || co.ID != "op_1" {
			t.Fatalf("the owner's token: %+v, %v", co, err)
		}
		forged := raw[:strings.LastIndexByte(raw, '.')+1] + "AAAA"
		for _, tc := range []struct {
			raw, caller string
			code        connect.Code
		}{
			{raw, "usr_2", connect.CodePermissionDenied},
			{forged, "usr_1", connect.CodeUnauthenticated},
			{"", "usr_1", connect.CodeInvalidArgument},
		} {
			if _, err := checkouts.Verify(t.Context(), tc.raw, tc.caller); connect.CodeOf(err) != tc.code {
				t.Fatalf("caller %s: %v, want %v", tc.caller, err, tc.code)
			}
		}
		evs, err := log.ByJTI(t.Context(), capability.Audience, claims.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Check != "subject" || evs[0].Subject != "usr_2" || evs[0].Kind != "checkout" || evs[0].CheckoutID != "op_1" {
			t.Fatalf("the other user's attempt: %+v", evs)
		}
		head, err := log.Verify(t.Context(), "payments")
		if err != nil || head.Seq != 2 {
			t.Fatalf("%d events recorded (%v), want 2: the other user's and the forgery", head.Seq, err)
		}
	})
}
