package saga_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/saga"
)

// infos returns the INFO records with message msg, each as its attributes.
func (h *records) infos(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.recs {
		if r.Level != slog.LevelInfo || r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

// TestSagaObserved (issue 20): every Exercise and Compensate call is
// counted by capability and outcome, the saga in flight while Drive runs,
// and each order's way is logged at INFO: compensating (with the step that
// failed), then failed, or completed, each with its id, outcome, the time
// since it was placed and the reason; never a token.
func TestSagaObserved(t *testing.T) {
	store := newStore(t, sqldbtest.SQLite(t))
	failing, completing := placed(t, store), placed(t, store)
	logs := &records{}
	var r *saga.Runner
	var inFlight atomic.Int64
	var payments, coupons atomic.Int32
	c := &calls{
		exercise: func(ctx context.Context, issuer string) (string, error) {
			inFlight.Store(r.InFlight())
			if issuer == "payments" && ctx.Value(failingKey{}) != nil {
				if payments.Add(1) == 1 {
					return "", connect.NewError(connect.CodeUnavailable, errors.New("down"))
				}
				return "", connect.NewError(connect.CodeFailedPrecondition, errors.New("card declined"))
			}
			return "ref-" + issuer, nil
		},
		compensate: func(_ context.Context, issuer string) error {
			if issuer == "coupons" && coupons.Add(1) == 1 {
				return connect.NewError(connect.CodeDeadlineExceeded, errors.New("slow"))
			}
			return nil
		},
	}
	r = saga.New(saga.Config{Repo: store, Sealer: sealer{}, Calls: c, Logger: slog.New(logs),
		Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err := r.Drive(context.WithValue(t.Context(), failingKey{}, true), failing.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Drive(t.Context(), completing.ID); err != nil {
		t.Fatal(err)
	}
	if inFlight.Load() != 1 || r.InFlight() != 0 {
		t.Errorf("InFlight = %d during a call, %d after; want 1, 0", inFlight.Load(), r.InFlight())
	}
	for _, tc := range []struct {
		call, capability, outcome string
		want                      int64
	}{
		{saga.CallExercise, "coupons:redeem", saga.OutcomeApplied, 2},
		{saga.CallExercise, "payments:capture", saga.OutcomeTransient, 1},
		{saga.CallExercise, "payments:capture", saga.OutcomeRefused, 1},
		{saga.CallExercise, "payments:capture", saga.OutcomeApplied, 1},
		{saga.CallCompensate, "coupons:redeem", saga.OutcomeTransient, 1},
		{saga.CallCompensate, "coupons:redeem", saga.OutcomeCompensated, 1},
		{saga.CallCompensate, "payments:capture", saga.OutcomeCompensated, 1},
		{saga.CallCompensate, "payments:capture", saga.OutcomeRefusedForGood, 0},
	} {
		if got := r.Calls(tc.call, tc.capability, tc.outcome); got != tc.want {
			t.Errorf("Calls(%s, %s, %s) = %d, want %d", tc.call, tc.capability, tc.outcome, got, tc.want)
		}
	}
	reason := "payments:capture refused: failed_precondition: card declined"
	for _, tc := range []struct {
		msg   string
		order string
		want  map[string]string
	}{
		{"order compensating", failing.ID, map[string]string{"outcome": "compensating", "step": "payments:capture", "reason": reason}},
		{"order failed", failing.ID, map[string]string{"outcome": "failed", "reason": reason}},
		{"order completed", completing.ID, map[string]string{"outcome": "completed"}},
	} {
		recs := logs.infos(tc.msg)
		if len(recs) != 1 {
			t.Errorf("%d %q lines, want 1", len(recs), tc.msg)
			continue
		}
		rec := recs[0]
		if rec["order"] != tc.order {
			t.Errorf("%q: order %q, want %q", tc.msg, rec["order"], tc.order)
		}
		for k, v := range tc.want {
			if rec[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.msg, k, rec[k], v)
			}
		}
		if ms, err := strconv.ParseInt(rec["duration_ms"], 10, 64); err != nil || ms < 0 {
			t.Errorf("%q: duration_ms %q", tc.msg, rec["duration_ms"])
		}
		for _, v := range rec {
			if strings.Contains(v, "token-") {
				t.Errorf("%q carries a token: %v", tc.msg, rec)
			}
		}
	}
}

type failingKey struct{}
