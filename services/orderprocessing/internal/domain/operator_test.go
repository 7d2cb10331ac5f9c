package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

func stuckOrder() domain.Order {
	steps := []domain.Step{
		{Capability: "coupons:redeem", State: domain.StepCompensationRefused, LastError: "already_exists: exercised for another order"},
		{Capability: "points:spend", State: domain.StepCompensated},
		{Capability: "payments:capture", State: domain.StepCompensationRefused, LastError: "failed_precondition: " + strings.Repeat("x", 300)},
	}
	o := domain.Order{Status: domain.OrderNeedsOperator, Steps: steps}
	o.FailureReason = domain.NeedsOperatorReason("payments:capture refused: declined", o.Refused())
	return o
}

func TestNeedsOperatorReason(t *testing.T) {
	t.Parallel()
	o := stuckOrder()
	want := "payments:capture refused: declined; compensation refused by coupons:redeem (already_exists: exercised for another order), payments:capture (failed_precondition: "
	if !strings.HasPrefix(o.FailureReason, want) || !strings.HasSuffix(o.FailureReason, "…)") {
		t.Fatalf("reason %q", o.FailureReason)
	}
	if got := domain.BaseReason(o.FailureReason); got != "payments:capture refused: declined" {
		t.Fatalf("BaseReason = %q", got)
	}
	// Again on a reason that already lists refusals (a retry refused again):
	// the list is replaced, not appended to.
	again := domain.NeedsOperatorReason(o.FailureReason, o.Refused()[:1])
	if strings.Count(again, "compensation refused by") != 1 || strings.Contains(again, "payments:capture (") {
		t.Fatalf("reason after a second refusal %q", again)
	}
}

func TestOperatorTransitions(t *testing.T) {
	t.Parallel()
	o := stuckOrder()
	retried, err := o.RetryRefused()
	if err != nil || len(retried) != 2 || o.Status != domain.OrderCompensating || o.FailureReason != "payments:capture refused: declined" {
		t.Fatalf("RetryRefused = %v, %v; order %v %q", retried, err, o.Status, o.FailureReason)
	}
	for _, st := range o.Steps {
		if st.State != domain.StepCompensating && st.State != domain.StepCompensated {
			t.Fatalf("after RetryRefused: step %s %v", st.Capability, st.State)
		}
	}
	if _, err := o.RetryRefused(); !errors.Is(err, domain.ErrNotStuck) {
		t.Fatalf("RetryRefused of a COMPENSATING order = %v", err)
	}

	for _, tc := range []struct {
		note    string
		wantErr error
	}{
		{"", domain.ErrInvalidArgument},
		{" \t\n", domain.ErrInvalidArgument},
		{strings.Repeat("é", domain.MaxOperatorNote+1), domain.ErrInvalidArgument},
		{"\xff", domain.ErrInvalidArgument},
		{strings.Repeat("é", domain.MaxOperatorNote), nil},
	} {
		o := stuckOrder()
		resolved, err := o.Resolve(tc.note)
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("Resolve(%.20q) = %v, want %v", tc.note, err, tc.wantErr)
		}
		if err != nil {
			if o.Status != domain.OrderNeedsOperator {
				t.Fatalf("a refused Resolve changed the order to %v", o.Status)
			}
			continue
		}
		if len(resolved) != 2 || o.Status != domain.OrderFailed || o.OperatorNote != tc.note {
			t.Fatalf("Resolve = %v; order %v note %q", resolved, o.Status, o.OperatorNote)
		}
		for _, st := range resolved {
			if st.State != domain.StepResolved {
				t.Fatalf("resolved step %s %v", st.Capability, st.State)
			}
		}
		if _, err := o.Resolve("again"); !errors.Is(err, domain.ErrNotStuck) {
			t.Fatalf("Resolve of a FAILED order = %v", err)
		}
	}
	if !domain.OrderNeedsOperator.Final() || domain.OrderCompensating.Final() {
		t.Fatal("Final")
	}
}
