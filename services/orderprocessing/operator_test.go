package orderprocessing_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

const needsOperator = orderprocessingv1.OrderStatus_ORDER_STATUS_NEEDS_OPERATOR

// scrape returns the value of the refused-compensations counter of
// capability in m's exposition, or "" when it is not there.
func scrape(t *testing.T, m *metrics.Registry, capability string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	body, _ := io.ReadAll(rec.Body)
	prefix := orderprocessing.CompensationsRefusedTotal + `{capability="` + capability + `"} `
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// TestCompensationRefusedNeedsOperator (issue 15, item 4), through the
// service: Payments declines the capture and Coupons refuses for good to
// give the coupon back. The order ends NEEDS_OPERATOR (WatchOrder ends
// there), the payment step compensated, the refusal counted in the metric;
// the operator's functions list it, retry it (once Coupons accepts, the
// order ends FAILED with every step compensated) and resolve another one
// by hand (FAILED, the refused step RESOLVED, the note kept).
func TestCompensationRefusedNeedsOperator(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t)
		in := w.start(db)
		m := metrics.New()
		in.svc.Export(m)
		var refuse atomic.Bool
		refuse.Store(true)
		w.ledgers["payments"].setFault(func(kind string, _ int) error {
			if kind == "exercise" {
				return connect.NewError(connect.CodeFailedPrecondition, errors.New("card declined"))
			}
			return nil
		})
		w.ledgers["coupons"].setFault(func(kind string, _ int) error {
			if kind == "compensate" && refuse.Load() {
				return connect.NewError(connect.CodeAlreadyExists, errors.New("exercised for another order"))
			}
			return nil
		})
		stuck := func(key string) *orderprocessingv1.Order {
			t.Helper()
			co := w.checkout(in, "usr_alice")
			o, err := w.place(in, "usr_alice", co.GetId(), w.tokens3("usr_alice", co.GetId()), key)
			if err != nil {
				t.Fatal(err)
			}
			end := final(w.await(in, "usr_alice", o.GetId()))
			if end.GetStatus() != needsOperator {
				t.Fatalf("order ended %v, want NEEDS_OPERATOR: %v", end.GetStatus(), end)
			}
			if !strings.Contains(end.GetFailureReason(), "compensation refused by coupons:redeem (already_exists: exercised for another order)") {
				t.Fatalf("failure reason %q does not name the refused step", end.GetFailureReason())
			}
			for _, st := range end.GetSteps() {
				want := orderprocessingv1.StepState_STEP_STATE_COMPENSATED
				if st.GetCapability() == "coupons:redeem" {
					want = orderprocessingv1.StepState_STEP_STATE_COMPENSATION_REFUSED
				}
				if st.GetState() != want {
					t.Fatalf("step %s %v, want %v", st.GetCapability(), st.GetState(), want)
				}
			}
			return end
		}

		first := stuck("k1")
		if got := scrape(t, m, "coupons:redeem"); got != "1" {
			t.Fatalf("%s{coupons:redeem} = %q, want 1", orderprocessing.CompensationsRefusedTotal, got)
		}
		if got := scrape(t, m, "payments:capture"); got != "0" {
			t.Fatalf("%s{payments:capture} = %q, want 0", orderprocessing.CompensationsRefusedTotal, got)
		}
		list, err := orderprocessing.StuckOrders(t.Context(), db, 10)
		if err != nil || len(list) != 1 || list[0].ID != first.GetId() || list[0].UserID != "usr_alice" ||
			len(list[0].Steps) != 1 || list[0].Steps[0].Capability != "coupons:redeem" ||
			list[0].Steps[0].State != "COMPENSATION_REFUSED" || list[0].Steps[0].LastError != "already_exists: exercised for another order" {
			t.Fatalf("StuckOrders = %+v, %v", list, err)
		}

		// Retried once Coupons accepts: the saga of the replica finishes it.
		refuse.Store(false)
		back, err := orderprocessing.RetryOrder(t.Context(), db, first.GetId())
		if err != nil || back.Status != "COMPENSATING" || len(back.Steps) != 1 || back.Steps[0].State != "COMPENSATING" {
			t.Fatalf("RetryOrder = %+v, %v", back, err)
		}
		end := final(w.await(in, "usr_alice", first.GetId()))
		if end.GetStatus() != failed || end.GetFailureReason() != "payments:capture refused: failed_precondition: card declined" {
			t.Fatalf("after the retry: %v %q", end.GetStatus(), end.GetFailureReason())
		}
		w.consistent(end)
		if _, err := orderprocessing.RetryOrder(t.Context(), db, first.GetId()); !errors.Is(err, orderprocessing.ErrNotStuck) {
			t.Fatalf("RetryOrder of a FAILED order = %v, want ErrNotStuck", err)
		}

		// Another one, resolved by hand.
		refuse.Store(true)
		second := stuck("k2")
		if got := scrape(t, m, "coupons:redeem"); got != "2" {
			t.Fatalf("%s{coupons:redeem} = %q, want 2", orderprocessing.CompensationsRefusedTotal, got)
		}
		if _, err := orderprocessing.ResolveOrder(t.Context(), db, second.GetId(), ""); !errors.Is(err, orderprocessing.ErrInvalidNote) {
			t.Fatalf("ResolveOrder without a note = %v", err)
		}
		done, err := orderprocessing.ResolveOrder(t.Context(), db, second.GetId(), "coupon re-issued by hand, OPS-7")
		if err != nil || done.Status != "FAILED" || done.OperatorNote != "coupon re-issued by hand, OPS-7" ||
			len(done.Steps) != 1 || done.Steps[0].State != "RESOLVED" {
			t.Fatalf("ResolveOrder = %+v, %v", done, err)
		}
		res, err := in.client.GetOrder(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.GetOrderRequest{OrderId: second.GetId()}))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Msg.GetOrder(); got.GetStatus() != failed || got.GetSteps()[0].GetState() != orderprocessingv1.StepState_STEP_STATE_RESOLVED {
			t.Fatalf("GetOrder after ResolveOrder: %v", got)
		}
		if list, err := orderprocessing.StuckOrders(t.Context(), db, 10); err != nil || len(list) != 0 {
			t.Fatalf("StuckOrders after both = %+v, %v", list, err)
		}
		if _, err := orderprocessing.RetryOrder(t.Context(), db, "ord_unknown"); !errors.Is(err, orderprocessing.ErrOrderNotFound) {
			t.Fatalf("RetryOrder(unknown) = %v", err)
		}
	})
}

// gate holds Coupons' Exercise calls until opened; it can be closed again
// for the next orders.
type gate struct {
	mu sync.Mutex
	ch chan struct{}
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ch = make(chan struct{})
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

type watchStream = connect.ServerStreamForClient[orderprocessingv1.WatchOrderResponse]

// TestWatchOrderCaps (issue 15, item 6), through the generated client: with
// 2 streams per user and 3 in all, alice's third stream is refused
// resource_exhausted while bob still gets one, then bob's second is refused
// for the total; streams that end free their slots, all three of them. The
// sagas are held in Coupons' Exercise, so every stream stays open until the
// test lets it end: no sleeps.
func TestWatchOrderCaps(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.watchPerUser, w.watchTotal = 2, 3
	in := w.start(sqldbtest.SQLite(t))
	g := &gate{}
	g.shut()
	t.Cleanup(g.open) // before the servers close: their handlers wait on it
	w.ledgers["coupons"].setFault(func(kind string, _ int) error {
		if kind == "exercise" {
			g.wait()
		}
		return nil
	})
	place := func(user, key string) string {
		co := w.checkout(in, user)
		o, err := w.place(in, user, co.GetId(), w.tokens3(user, co.GetId()), key)
		if err != nil {
			t.Fatal(err)
		}
		return o.GetId()
	}
	ctx := testContext(t)
	open := func(user, id string) *watchStream {
		t.Helper()
		s, err := in.client.WatchOrder(ctx, header(w.as(user), &orderprocessingv1.WatchOrderRequest{OrderId: id}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	// held opens a stream and waits for its first message: the server
	// holds its slot from then until the stream ends.
	held := func(user, id string) *watchStream {
		t.Helper()
		s := open(user, id)
		if !s.Receive() {
			t.Fatalf("%s's stream: %v", user, s.Err())
		}
		return s
	}
	refused := func(user, id string) {
		t.Helper()
		s := open(user, id)
		if s.Receive() {
			t.Fatalf("%s's stream beyond the cap was sent the order, %v", user, s.Msg().GetOrder().GetStatus())
		}
		if code := connect.CodeOf(s.Err()); code != connect.CodeResourceExhausted {
			t.Fatalf("%s's stream beyond the cap: %v, want resource_exhausted", user, s.Err())
		}
	}
	// drain lets the held sagas go on and reads each stream to its end:
	// after its order's final state, having given its slot back before the
	// client sees the end.
	drain := func(streams ...*watchStream) {
		t.Helper()
		g.open()
		for _, s := range streams {
			var last *orderprocessingv1.Order
			for s.Receive() {
				last = s.Msg().GetOrder()
			}
			if s.Err() != nil || last.GetStatus() != completed {
				t.Fatalf("stream ended %v with %v, want COMPLETED", s.Err(), last.GetStatus())
			}
		}
	}

	alices, bobs := place("usr_alice", "a1"), place("usr_bob", "b1")
	a1, a2 := held("usr_alice", alices), held("usr_alice", alices)
	refused("usr_alice", alices) // the cap+1-th stream of one user
	b1 := held("usr_bob", bobs)  // another user still gets one
	refused("usr_bob", bobs)     // the fourth in all
	drain(a1, a2, b1)

	// Every slot is free again: three streams at once, as before.
	g.shut()
	alices, bobs = place("usr_alice", "a2"), place("usr_bob", "b2")
	a1, a2 = held("usr_alice", alices), held("usr_alice", alices)
	b1 = held("usr_bob", bobs)
	refused("usr_alice", alices)
	drain(a1, a2, b1)
}
