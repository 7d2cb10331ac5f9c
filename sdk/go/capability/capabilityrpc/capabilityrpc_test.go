package capabilityrpc_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

func TestExerciseProto(t *testing.T) {
	t.Parallel()
	applied, compensated := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 10, 5, 0, 0, time.UTC)
	eur := money.Money{AmountMinor: 500, Currency: "EUR"}
	for _, tc := range []struct {
		name string
		in   capability.Record
		want *capabilityv1.Exercise
	}{
		{"applied", capability.Record{JTI: "j1", Capability: "coupons:redeem", OrderID: "ord_1", Reference: "rdm_1", Settlement: eur, AppliedAt: applied},
			&capabilityv1.Exercise{Jti: "j1", Capability: "coupons:redeem", OrderId: "ord_1", Reference: "rdm_1",
				State: capabilityv1.ExerciseState_EXERCISE_STATE_APPLIED, Settlement: &typev1.Money{AmountMinor: 500, Currency: "EUR"},
				AppliedAt: timestamppb.New(applied)}},
		{"voided before use", capability.Record{JTI: "j2", Capability: "points:spend", OrderID: "ord_2", Compensated: true, Settlement: eur, CompensatedAt: compensated},
			&capabilityv1.Exercise{Jti: "j2", Capability: "points:spend", OrderId: "ord_2",
				State: capabilityv1.ExerciseState_EXERCISE_STATE_COMPENSATED, Settlement: &typev1.Money{AmountMinor: 500, Currency: "EUR"},
				CompensatedAt: timestamppb.New(compensated)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := capabilityrpc.ExerciseProto(tc.in); !proto.Equal(got, tc.want) {
				t.Fatalf("ExerciseProto = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCompensateReason checks the reason limit before any token is read: in
// characters, not bytes.
func TestCompensateReason(t *testing.T) {
	t.Parallel()
	h := capabilityrpc.NewHandler(nil, nil, func(context.Context, error) *connect.Error { return nil }, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name, reason, wantMsg string
	}{
		{"200 two-byte characters pass", strings.Repeat("é", capability.MaxReasonLen), "confirmation_token is required"},
		{"201 characters are refused", strings.Repeat("x", capability.MaxReasonLen+1), "reason is longer than 200 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := h.Compensate(t.Context(), connect.NewRequest(&capabilityv1.CompensateRequest{OrderId: "ord_1", Reason: tc.reason}))
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || ce.Message() != tc.wantMsg {
				t.Fatalf("err = %v, want InvalidArgument %q", err, tc.wantMsg)
			}
		})
	}
}

func TestVerifyConfirmChecksTheKeyFirst(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set(idempotency.Header, "key-b")
	checkouts := capabilityrpc.NewCheckouts(nil, nil, slog.New(slog.DiscardHandler))
	_, _, err := checkouts.VerifyConfirm(t.Context(), "", "key-a", h, "usr_1")
	if !errors.Is(err, idempotency.ErrInvalid) || connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("differing keys: error = %v, want InvalidArgument wrapping idempotency.ErrInvalid", err)
	}
	_, _, err = checkouts.VerifyConfirm(t.Context(), "", "key-a", http.Header{}, "usr_1")
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "checkout_token is required") {
		t.Errorf("no checkout token: error = %v, want InvalidArgument", err)
	}
}
