package orderprocessing_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// stores open a fresh database of each kind (PostgreSQL skips, or fails in
// CI, when unreachable).
var stores = map[string]func(testing.TB, ...sqldb.Option) *sqldb.DB{
	"sqlite":   sqldbtest.SQLite,
	"postgres": sqldbtest.Postgres,
}

const (
	completed = orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED
	failed    = orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED
)

// TestCheckout places an order on both stores: the saga completes it, the
// same key returns it, only its owner and admins see it.
func TestCheckout(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t)
		in := w.start(db)
		co := w.checkout(in, "usr_alice")
		if co.GetTotal().GetAmountMinor() != 1250 || co.GetTotal().GetCurrency() != "EUR" || !strings.HasPrefix(co.GetId(), "op_") {
			t.Fatalf("checkout = %v", co)
		}
		toks := w.tokens3("usr_alice", co.GetId())
		o, err := w.place(in, "usr_alice", co.GetId(), toks, "key-1")
		if err != nil {
			t.Fatal(err)
		}
		seen := w.await(in, "usr_alice", o.GetId())
		end := final(seen)
		if end.GetStatus() != completed {
			t.Fatalf("order ended %v: %v", end.GetStatus(), end)
		}
		w.consistent(end)
		if done, failed := in.svc.SagaOutcomes(); done != 1 || failed != 0 {
			t.Fatalf("SagaOutcomes = %d completed, %d failed; want 1, 0", done, failed)
		}
		for _, st := range end.GetSteps() {
			if st.GetReference() == "" || st.GetState() != orderprocessingv1.StepState_STEP_STATE_APPLIED {
				t.Fatalf("step %v", st)
			}
		}
		if got := end.GetSteps()[len(end.GetSteps())-1].GetCapability(); got != "payments:capture" {
			t.Fatalf("last step is %s, want the payment capture", got)
		}
		again, err := w.place(in, "usr_alice", co.GetId(), toks, "key-1")
		if err != nil || again.GetId() != o.GetId() {
			t.Fatalf("retry with the same key = %v, %v", again, err)
		}
		if _, err := w.place(in, "usr_alice", co.GetId(), toks, "key-2"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("second order for a placed checkout: %v", err)
		}
		if _, err := in.client.GetOrder(t.Context(), header(w.as("usr_mallory"), &orderprocessingv1.GetOrderRequest{OrderId: o.GetId()})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("someone else's order: %v", err)
		}
		if _, err := in.client.GetOrder(t.Context(), header(w.as("usr_mallory"), &orderprocessingv1.GetOrderRequest{OrderId: "ord_nope"})); connect.CodePermissionDenied != connect.CodeOf(err) {
			t.Fatalf("unknown order: %v (must look like someone else's)", err)
		}
		admin := w.tokens.As(t, "usr_admin", "shop admin")
		if _, err := in.client.GetOrder(t.Context(), header(admin, &orderprocessingv1.GetOrderRequest{OrderId: o.GetId()})); err != nil {
			t.Fatalf("admin: %v", err)
		}
		list, err := in.client.ListOrders(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.ListOrdersRequest{}))
		if err != nil || len(list.Msg.GetOrders()) != 1 || list.Msg.GetOrders()[0].GetId() != o.GetId() {
			t.Fatalf("ListOrders = %v, %v", list, err)
		}
		if _, err := in.client.ListOrders(t.Context(), header(w.as("usr_mallory"), &orderprocessingv1.ListOrdersRequest{UserId: "usr_alice"})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("listing someone else's orders: %v", err)
		}
	})
}

// TestRefusals sends PlaceOrder every envelope and settlement defect: each
// gets its code and consumes nothing, so the good tokens still work after.
func TestRefusals(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, testRefusals)
}

func testRefusals(t *testing.T, db *sqldb.DB) {
	w := newWorld(t)
	in := w.start(db)
	co := w.checkout(in, "usr_alice")
	other := w.checkout(in, "usr_alice")
	bobs := w.checkout(in, "usr_bob")
	id := co.GetId()
	good := w.tokens3("usr_alice", id)
	c, p, pay := good[0], good[1], good[2]
	conf := w.confirmation
	tampered := func(raw string) string {
		parts := strings.Split(raw, ".")
		return parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	}
	past, _ := token.NewIssuer("coupons", w.rings["coupons"], token.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	expired, _, err := token.Issue(t.Context(), past, token.Confirmation, token.ConfirmationClaims{
		Registered: token.Registered{Subject: "usr_alice", Audience: []string{"order-processing"}}, OrderProcessingID: id,
		Capabilities: []string{"coupons:redeem"}, Settlement: token.Settlement{AmountMinor: 250, Currency: "EUR"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		user   string
		target string
		toks   []string
		key    string
		want   connect.Code
	}{
		{"tampered signature", "usr_alice", id, []string{tampered(c), p, pay}, "k", connect.CodeInvalidArgument},
		{"expired token", "usr_alice", id, []string{expired, p, pay}, "k", connect.CodeFailedPrecondition},
		{"wrong audience", "usr_alice", id, []string{conf("coupons", "usr_alice", id, 250, func(c *token.ConfirmationClaims) { c.Audience = []string{"payments"} }), p, pay}, "k", connect.CodeInvalidArgument},
		{"capability outside the issuer's namespace", "usr_alice", id, []string{conf("coupons", "usr_alice", id, 250, func(c *token.ConfirmationClaims) { c.Capabilities = []string{"payments:capture"} }), p, pay}, "k", connect.CodeInvalidArgument},
		{"not a token", "usr_alice", id, []string{"garbage", p, pay}, "k", connect.CodeInvalidArgument},
		{"other checkout", "usr_alice", id, []string{conf("coupons", "usr_alice", other.GetId(), 250), p, pay}, "k", connect.CodeFailedPrecondition},
		{"other user", "usr_alice", id, []string{conf("coupons", "usr_bob", id, 250), p, pay}, "k", connect.CodeFailedPrecondition},
		{"two capabilities", "usr_alice", id, []string{conf("coupons", "usr_alice", id, 250, func(c *token.ConfirmationClaims) { c.Capabilities = []string{"coupons:redeem", "coupons:stack"} }), p, pay}, "k", connect.CodeFailedPrecondition},
		{"capability without a route", "usr_alice", id, []string{conf("coupons", "usr_alice", id, 250, func(c *token.ConfirmationClaims) { c.Capabilities = []string{"coupons:stack"} }), p, pay}, "k", connect.CodeFailedPrecondition},
		{"one capability twice", "usr_alice", id, []string{c, conf("coupons", "usr_alice", id, 300), pay}, "k", connect.CodeFailedPrecondition},
		{"settlement short", "usr_alice", id, []string{c, p, conf("payments", "usr_alice", id, 699)}, "k", connect.CodeFailedPrecondition},
		{"settlement over", "usr_alice", id, []string{c, p, conf("payments", "usr_alice", id, 701)}, "k", connect.CodeFailedPrecondition},
		{"wrong currency", "usr_alice", id, []string{c, p, conf("payments", "usr_alice", id, 700, func(c *token.ConfirmationClaims) { c.Settlement.Currency = "USD" })}, "k", connect.CodeFailedPrecondition},
		{"no tokens", "usr_alice", id, nil, "k", connect.CodeInvalidArgument},
		{"nine tokens", "usr_alice", id, append(append(append([]string{}, good...), good...), good...), "k", connect.CodeInvalidArgument},
		{"no idempotency key", "usr_alice", id, good, "", connect.CodeInvalidArgument},
		{"someone else's checkout", "usr_mallory", id, good, "k", connect.CodePermissionDenied},
		{"unknown checkout", "usr_alice", "op_nope", good, "k", connect.CodePermissionDenied},
		{"tokens of another user's checkout", "usr_alice", bobs.GetId(), good, "k", connect.CodePermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.place(in, tc.user, tc.target, tc.toks, tc.key)
			if connect.CodeOf(err) != tc.want {
				t.Fatalf("error = %v, want code %v", err, tc.want)
			}
			for _, tok := range tc.toks {
				if len(tok) > 20 && err != nil && strings.Contains(err.Error(), tok[len(tok)-20:]) {
					t.Fatal("the error echoes a token")
				}
			}
		})
	}
	o, err := w.place(in, "usr_alice", id, good, "k")
	if err != nil {
		t.Fatalf("the good tokens after the refusals: %v", err)
	}
	w.consistent(final(w.await(in, "usr_alice", o.GetId())))
	// Replays: on another checkout's order, and the cancelled checkout.
	if _, err := w.place(in, "usr_alice", other.GetId(), good, "k2"); connect.CodeOf(err) != connect.CodeAlreadyExists && connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("replayed tokens: %v", err)
	}
	if _, err := in.client.CancelCheckout(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.CancelCheckoutRequest{CheckoutId: other.GetId()})); err != nil {
		t.Fatal(err)
	}
	fresh := w.tokens3("usr_alice", other.GetId())
	if _, err := w.place(in, "usr_alice", other.GetId(), fresh, "k3"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("order on a cancelled checkout: %v", err)
	}
	if _, err := in.client.CancelCheckout(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.CancelCheckoutRequest{CheckoutId: id})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("cancelling a placed checkout: %v", err)
	}
}

// TestReplayedTokensAcrossRequests: the same tokens placed twice with two
// keys, the second time after the first order exists: AlreadyExists from
// the fast path or the database, never a second order.
func TestReplayedTokens(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	in := w.start(sqldbtest.SQLite(t))
	co := w.checkout(in, "usr_alice")
	toks := w.tokens3("usr_alice", co.GetId())
	if _, err := w.place(in, "usr_alice", co.GetId(), toks, "a"); err != nil {
		t.Fatal(err)
	}
	// A second instance has a cold ristretto cache: the database refuses.
	cold := w.start(sqldbtest.SQLite(t))
	_ = cold
	if _, err := w.place(in, "usr_alice", co.GetId(), toks, "b"); connect.CodeOf(err) != connect.CodeAlreadyExists && connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("replay: %v", err)
	}
}

// TestFaultTable fails each step in each way; the order ends FAILED with
// every step compensated and no effect standing, or COMPLETED when the
// fault is transient and passes.
func TestFaultTable(t *testing.T) {
	t.Parallel()
	refuse := func(string, int) error {
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("refused by the domain"))
	}
	down := func(string, int) error { return connect.NewError(connect.CodeUnavailable, errors.New("down")) }
	hang := func(string, int) error { return errHang }
	flaky := func(_ string, call int) error {
		if call <= 2 {
			return connect.NewError(connect.CodeUnavailable, errors.New("blip"))
		}
		return nil
	}
	for store, open := range stores {
		for _, issuer := range []string{"coupons", "points", "payments"} {
			for _, tc := range []struct {
				name  string
				fault func(string, int) error
				want  orderprocessingv1.OrderStatus
				// callTimeout, when set, is the saga's: a domain that
				// hangs is given up on at it, however long it is.
				callTimeout time.Duration
			}{
				{"refuses", refuse, failed, 0},
				{"stays down", down, failed, 0},
				{"times out", hang, failed, 300 * time.Millisecond},
				{"recovers after two errors", flaky, completed, 0},
			} {
				t.Run(store+"/"+issuer+" "+tc.name, func(t *testing.T) {
					t.Parallel()
					w := newWorld(t)
					if tc.callTimeout != 0 {
						w.callTimeout = tc.callTimeout
					}
					in := w.start(open(t))
					w.ledgers[issuer].setFault(func(kind string, call int) error {
						if kind == "exercise" {
							return tc.fault(kind, call)
						}
						return nil
					})
					co := w.checkout(in, "usr_alice")
					o, err := w.place(in, "usr_alice", co.GetId(), w.tokens3("usr_alice", co.GetId()), "k")
					if err != nil {
						t.Fatal(err)
					}
					end := final(w.await(in, "usr_alice", o.GetId()))
					if end.GetStatus() != tc.want {
						t.Fatalf("order ended %v, want %v: %v", end.GetStatus(), tc.want, end)
					}
					w.consistent(end)
					if tc.want == failed && end.GetFailureReason() == "" {
						t.Fatal("a failed order without a reason")
					}
				})
			}
		}
	}
	t.Run("compensation retried until it succeeds", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		in := w.start(sqldbtest.SQLite(t))
		w.ledgers["payments"].setFault(func(kind string, _ int) error {
			if kind == "exercise" {
				return refuse(kind, 0)
			}
			return nil
		})
		// Coupons refuses to compensate at least four times, and until the
		// watcher has seen the order COMPENSATING: the order stays there
		// until then, however late the watch begins.
		var n int
		var mu sync.Mutex
		watched := make(chan struct{})
		w.ledgers["coupons"].setFault(func(kind string, _ int) error {
			mu.Lock()
			defer mu.Unlock()
			if kind != "compensate" {
				return nil
			}
			n++
			select {
			case <-watched:
				if n > 4 {
					return nil
				}
			default:
			}
			return connect.NewError(connect.CodeUnavailable, errors.New("down"))
		})
		co := w.checkout(in, "usr_alice")
		o, err := w.place(in, "usr_alice", co.GetId(), w.tokens3("usr_alice", co.GetId()), "k")
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		seen := w.watch(in, "usr_alice", o.GetId(), func(o *orderprocessingv1.Order) {
			if o.GetStatus() == orderprocessingv1.OrderStatus_ORDER_STATUS_COMPENSATING {
				once.Do(func() { close(watched) })
			}
		})
		w.consistent(final(seen))
		sawCompensating := false
		for _, s := range seen {
			sawCompensating = sawCompensating || s.GetStatus() == orderprocessingv1.OrderStatus_ORDER_STATUS_COMPENSATING
		}
		if !sawCompensating {
			t.Fatal("the watcher never saw COMPENSATING")
		}
	})
}

// TestCrashRecovery stops the orchestrator at every call of the saga,
// before the domain acts and after it acted but before it answered, then
// starts a new one on the same database: every order ends final and
// consistent, and no effect is applied twice.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	// Calls reaching a domain: 3 exercises on the happy path; with payments
	// refusing, 3 exercises and 3 compensations, of which 2 exercises and 3
	// compensations have an effect to crash after.
	calls := map[string]map[string]int{
		"complete":   {"before": 3, "after": 3},
		"compensate": {"before": 6, "after": 5},
	}
	for store, open := range stores {
		for _, path := range []string{"complete", "compensate"} {
			for _, when := range []string{"before", "after"} {
				for call := 1; call <= calls[path][when]; call++ {
					t.Run(fmt.Sprintf("%s/%s/call %d/%s", store, path, call, when), func(t *testing.T) {
						t.Parallel()
						w := newWorld(t)
						db := open(t)
						first := w.start(db)
						var mu sync.Mutex
						calls := 0
						crashed := make(chan struct{})
						crash := func() bool {
							mu.Lock()
							defer mu.Unlock()
							calls++
							if calls == call {
								first.stop()
								close(crashed)
								return true
							}
							return false
						}
						for name, l := range w.ledgers {
							l.setFault(func(kind string, _ int) error {
								if when == "before" && crash() {
									return connect.NewError(connect.CodeUnavailable, errCrash)
								}
								if path == "compensate" && name == "payments" && kind == "exercise" {
									return connect.NewError(connect.CodeFailedPrecondition, errors.New("declined"))
								}
								return nil
							})
							l.setAfter(func(string) {
								if when == "after" {
									crash()
								}
							})
						}
						co := w.checkout(first, "usr_alice")
						o, err := w.place(first, "usr_alice", co.GetId(), w.tokens3("usr_alice", co.GetId()), "k")
						if err != nil {
							t.Fatal(err)
						}
						select {
						case <-crashed:
						case <-testContext(t).Done():
							t.Fatal("the saga never reached the crash point")
						}
						<-first.done
						for _, l := range w.ledgers {
							l.setFault(func(kind string, _ int) error {
								if path == "compensate" && l.name == "payments" && kind == "exercise" {
									return connect.NewError(connect.CodeFailedPrecondition, errors.New("declined"))
								}
								return nil
							})
							l.setAfter(nil)
						}
						second := w.start(db)
						end := final(w.await(second, "usr_alice", o.GetId()))
						want := completed
						if path == "compensate" {
							want = failed
						}
						if end.GetStatus() != want {
							t.Fatalf("order ended %v, want %v", end.GetStatus(), want)
						}
						w.consistent(end)
					})
				}
			}
		}
	}
}

// TestReplicas runs two OrderProcessing replicas on one PostgreSQL: the same
// tokens placed through both at once make one order, and every saga runs
// once.
func TestReplicas(t *testing.T) {
	t.Parallel()
	db := sqldbtest.Postgres(t)
	w := newWorld(t)
	a, b := w.start(db), w.start(db)
	const orders = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	placed := map[string]bool{}
	for i := range orders {
		co := w.checkout(a, "usr_alice")
		toks := w.tokens3("usr_alice", co.GetId())
		for j, in := range []*instance{a, b} {
			wg.Go(func() {
				o, err := w.place(in, "usr_alice", co.GetId(), toks, fmt.Sprintf("k-%d-%d", i, j))
				switch code := connect.CodeOf(err); {
				case err == nil:
					mu.Lock()
					placed[o.GetId()] = true
					mu.Unlock()
				case code == connect.CodeAlreadyExists || code == connect.CodeFailedPrecondition:
				default:
					t.Errorf("place: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if len(placed) != orders {
		t.Fatalf("%d orders placed for %d checkouts", len(placed), orders)
	}
	for id := range placed {
		end := final(w.await(b, "usr_alice", id))
		if end.GetStatus() != completed {
			t.Fatalf("order %s ended %v", id, end.GetStatus())
		}
	}
	standing := 0
	for _, l := range w.ledgers {
		standing += l.standing(t)
	}
	if standing != 3*orders {
		t.Fatalf("%d effects stand, want %d", standing, 3*orders)
	}
}

// TestConcurrentRetries sends one PlaceOrder, StartCheckout and
// CancelCheckout 50 times at once with the same idempotency key (across two
// replicas on PostgreSQL): every retry gets the one stored result, never a
// refusal of its own earlier attempt.
func TestConcurrentRetries(t *testing.T) {
	t.Parallel()
	const n = 50
	for _, dbName := range []string{"sqlite", "postgres"} {
		t.Run(dbName, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			var ins []*instance
			if dbName == "sqlite" {
				ins = []*instance{w.start(sqldbtest.SQLite(t))}
			} else {
				db := sqldbtest.Postgres(t)
				ins = []*instance{w.start(db), w.start(db)}
			}
			all := func(call func(in *instance) (string, error)) map[string]int {
				var mu sync.Mutex
				got := map[string]int{}
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						id, err := call(ins[i%len(ins)])
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							got["error: "+connect.CodeOf(err).String()+": "+err.Error()]++
							return
						}
						got[id]++
					})
				}
				wg.Wait()
				return got
			}

			started := all(func(in *instance) (string, error) {
				res, err := in.client.StartCheckout(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.StartCheckoutRequest{
					Items: []*orderprocessingv1.CartItem{{Sku: "TEA-GREEN-100G", Quantity: 1}}, IdempotencyKey: "start-1",
				}))
				return res.Msg.GetCheckout().GetId(), err
			})
			if len(started) != 1 {
				t.Fatalf("StartCheckout ×%d with one key: %v, want one checkout for all", n, started)
			}
			var coID string
			for id := range started {
				coID = id
			}
			toks := w.tokens3("usr_alice", coID)
			placed := all(func(in *instance) (string, error) {
				o, err := w.place(in, "usr_alice", coID, toks, "place-1")
				return o.GetId(), err
			})
			if len(placed) != 1 {
				t.Fatalf("PlaceOrder ×%d with one key: %v, want one order for all", n, placed)
			}

			other := w.checkout(ins[0], "usr_alice")
			cancelled := all(func(in *instance) (string, error) {
				res, err := in.client.CancelCheckout(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.CancelCheckoutRequest{CheckoutId: other.GetId()}))
				return res.Msg.GetCheckout().GetStatus().String(), err
			})
			if len(cancelled) != 1 {
				t.Fatalf("CancelCheckout ×%d: %v, want one answer for all", n, cancelled)
			}
		})
	}
}

// TestSagaCallsShareAConnection (issue 17): the saga's calls to one issuer
// share one connection, however many orders run at once. Eight Exercise
// calls are held in the coupons domain at the same time: over HTTP/1.1
// (http.DefaultClient, the former default) they needed eight connections.
func TestSagaCallsShareAConnection(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t)
		in := w.start(db)
		const orders = 8
		users := make([]string, orders)
		for i := range users {
			users[i] = fmt.Sprintf("usr_conn%d", i)
		}
		// One order first: its calls open the connection.
		warm := w.checkout(in, users[0])
		o, err := w.place(in, users[0], warm.GetId(), w.tokens3(users[0], warm.GetId()), "warm")
		if err != nil {
			t.Fatal(err)
		}
		if end := final(w.await(in, users[0], o.GetId())); end.GetStatus() != completed {
			t.Fatalf("warm-up order ended %v", end.GetStatus())
		}
		arrived, release := make(chan struct{}, orders), make(chan struct{})
		w.ledgers["coupons"].setFault(func(kind string, _ int) error {
			if kind == "exercise" {
				arrived <- struct{}{}
				<-release
			}
			return nil
		})
		placed := make([]string, orders)
		for i, user := range users {
			co := w.checkout(in, user)
			o, err := w.place(in, user, co.GetId(), w.tokens3(user, co.GetId()), "k")
			if err != nil {
				t.Fatal(err)
			}
			placed[i] = o.GetId()
		}
		for range orders {
			<-arrived // every order's coupon Exercise is in flight at once
		}
		close(release)
		for i, user := range users {
			if end := final(w.await(in, user, placed[i])); end.GetStatus() != completed {
				t.Fatalf("order %d ended %v", i, end.GetStatus())
			}
		}
		for name, n := range w.conns {
			if got := n.Load(); got != 1 {
				t.Errorf("%s accepted %d connections from OrderProcessing, want 1 (HTTP/2, multiplexed)", name, got)
			}
		}
	})
}

// TestWatchAcrossReplicasNotified (issue 17): a WatchOrder stream on one
// replica follows an order whose saga another replica runs as the saga
// moves, because the other replica's transitions arrive by PostgreSQL
// LISTEN/NOTIFY. The watching replica polls once an hour and never recovers
// orders, so nothing else can move its stream.
func TestWatchAcrossReplicasNotified(t *testing.T) {
	t.Parallel()
	db := sqldbtest.Postgres(t)
	w := newWorld(t)
	a := w.start(db)
	const user = "usr_alice"
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	w.ledgers["coupons"].setFault(func(kind string, _ int) error {
		if kind == "exercise" {
			arrived <- struct{}{}
			<-release
		}
		return nil
	})
	co := w.checkout(a, user)
	o, err := w.place(a, user, co.GetId(), w.tokens3(user, co.GetId()), "k")
	if err != nil {
		t.Fatal(err)
	}
	<-arrived // a holds the order's lease, mid-saga
	w.watchPoll, w.recoverEvery = time.Hour, time.Hour
	b := w.start(db)
	first := true
	seen := w.watch(b, user, o.GetId(), func(*orderprocessingv1.Order) {
		if first { // b's stream is open: let a's saga go on
			first = false
			close(release)
		}
	})
	if end := final(seen); end.GetStatus() != completed {
		t.Fatalf("b's stream ended with %v", end.GetStatus())
	}
	// Stopped, each runner has counted every order it ended.
	a.crash()
	b.crash()
	if doneA, _ := a.svc.SagaOutcomes(); doneA != 1 {
		t.Fatalf("a completed %d orders, want the one (b must only watch)", doneA)
	}
	if doneB, failedB := b.svc.SagaOutcomes(); doneB+failedB != 0 {
		t.Fatalf("b ended %d orders, want none", doneB+failedB)
	}
}
