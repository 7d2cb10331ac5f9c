package scaleout_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// ledger is one service's tables: a schema of the shared PostgreSQL
// database, or a SQLite file of the embedded data directory.
type ledger struct {
	db     *sql.DB
	schema string
}

func (l ledger) table(name string) string {
	if l.schema == "" {
		return name
	}
	return `"` + l.schema + `".` + name
}

// ledgers are the tables the invariants are read from: OrderProcessing's
// orders and steps, and each domain's own state, read directly.
type ledgers struct {
	op, coupons, points, payments, processor ledger
}

// pgLedgers reads the schemas of the cluster c.
func pgLedgers(t *testing.T, c *cluster) *ledgers {
	t.Helper()
	db, err := sqldb.Open(t.Context(), c.pg, sqldb.WithMaxOpenConns(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	l := func(svc string) ledger { return ledger{db: db.SQL(), schema: c.prefix + "_" + svc} }
	return &ledgers{op: l("orderprocessing"), coupons: l("coupons"), points: l("points"), payments: l("payments"), processor: l("payments_processor")}
}

// sqliteLedgers reads the SQLite files of an embedded data directory.
func sqliteLedgers(t *testing.T, dir string) *ledgers {
	t.Helper()
	l := func(file string) ledger {
		db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(dir, file+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return ledger{db: db.SQL()}
	}
	return &ledgers{op: l("order-processing"), coupons: l("coupons"), points: l("points"), payments: l("payments"), processor: l("payments-processor")}
}

// Wire values of the order and step states (orderprocessing/internal/domain).
const (
	orderPending, orderInProgress, orderCompensating, orderCompleted, orderFailed           = 1, 2, 3, 4, 5
	stepPending, stepExercising, stepApplied, stepFailed, stepCompensating, stepCompensated = 1, 2, 3, 4, 5, 6
	// An issuer refusing a compensation for good parks the order for an
	// operator: no fault of these tests makes one, so the invariants below
	// treat it as a violation, named.
	orderNeedsOperator, stepCompensationRefused, stepResolved = 6, 7, 8
	// Each domain's exercise record: applied, or compensated (voided).
	exerciseApplied, exerciseCompensated = 1, 2
)

var orderNames = map[int64]string{orderPending: "PENDING", orderInProgress: "IN_PROGRESS", orderCompensating: "COMPENSATING", orderCompleted: "COMPLETED", orderFailed: "FAILED", orderNeedsOperator: "NEEDS_OPERATOR"}
var stepNames = map[int64]string{stepPending: "pending", stepExercising: "exercising", stepApplied: "applied", stepFailed: "failed", stepCompensating: "compensating", stepCompensated: "compensated", stepCompensationRefused: "compensation refused", stepResolved: "resolved"}

type step struct {
	capability string
	state      int64
	settlement int64
	jti        string
}

type order struct {
	id     string
	status int64
	steps  []step
}

func (o order) step(capability string) (step, bool) {
	for _, s := range o.steps {
		if s.capability == capability {
			return s, true
		}
	}
	return step{}, false
}

// orders reads every order with its steps.
func (l *ledgers) orders(ctx context.Context) (map[string]*order, error) {
	out := map[string]*order{}
	err := query(ctx, l.op, `SELECT id, status FROM `+l.op.table("orders"), func(r *sql.Rows) error {
		o := &order{}
		if err := r.Scan(&o.id, &o.status); err != nil {
			return err
		}
		out[o.id] = o
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(ctx, l.op, `SELECT order_id, capability, state, settlement_minor, jti FROM `+l.op.table("steps")+` ORDER BY order_id, stage, capability`, func(r *sql.Rows) error {
		var id string
		var s step
		if err := r.Scan(&id, &s.capability, &s.state, &s.settlement, &s.jti); err != nil {
			return err
		}
		if o := out[id]; o != nil {
			o.steps = append(o.steps, s)
		}
		return nil
	})
	return out, err
}

// query runs q on l and hands each row to row; ctx (the test's) bounds it.
func query(ctx context.Context, l ledger, q string, row func(*sql.Rows) error) error {
	rows, err := l.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// where describes where an order's saga stood: its status and each step's
// state, e.g. "IN_PROGRESS coupons:applied points:exercising
// payments:pending"; "not stored" for an order id not (yet) known.
func where(o *order) string {
	if o == nil {
		return "not stored"
	}
	parts := []string{orderNames[o.status]}
	for _, s := range o.steps {
		parts = append(parts, strings.SplitN(s.capability, ":", 2)[0]+":"+stepNames[s.state])
	}
	return strings.Join(parts, " ")
}

// summary counts what the invariant check found.
type summary struct {
	orders, completed, failed  int
	redeemed, spends, captures int
	spent                      int64 // points spent by completed orders
	balances                   map[string]int64
	compensatedSteps           int
}

func (s summary) String() string {
	return fmt.Sprintf("%d orders (%d completed, %d failed); %d coupons redeemed, %d point spends (%d points), %d captures, %d steps compensated",
		s.orders, s.completed, s.failed, s.redeemed, s.spends, s.spent, s.captures, s.compensatedSteps)
}

// checkInvariants reads every order and every domain's state and reports
// each broken promise with t.Errorf:
//
//   - every order is COMPLETED (every step applied) or FAILED (every step
//     compensated);
//   - a coupon is redeemed, points are spent and a payment is captured
//     only for a completed order, exactly once, and for its exact amount;
//     a failed order's coupon is available again, its points refunded (net
//     zero) and its hold voided or refunded;
//   - each points balance is the sum of its ledger, every running balance
//     along the ledger is right and never negative.
func checkInvariants(t *testing.T, l *ledgers) summary {
	t.Helper()
	ctx := testContext(t)
	orders, err := l.orders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := summary{orders: len(orders), balances: map[string]int64{}}
	byJTI := map[string]*order{} // every step's jti -> its order
	for _, o := range orders {
		switch o.status {
		case orderCompleted:
			sum.completed++
		case orderFailed:
			sum.failed++
		default:
			t.Errorf("order %s is not final: %s", o.id, where(o))
		}
		for _, s := range o.steps {
			byJTI[s.jti] = o
			if o.status == orderCompleted && s.state != stepApplied || o.status == orderFailed && s.state != stepCompensated {
				t.Errorf("order %s: %s", o.id, where(o))
			}
			if s.state == stepCompensated {
				sum.compensatedSteps++
			}
		}
	}
	// completedBy reports whether jti is the step capability of a completed
	// order, and that order.
	completedBy := func(jti, capability string) (*order, bool) {
		o := byJTI[jti]
		if o == nil {
			return nil, false
		}
		s, ok := o.step(capability)
		return o, ok && s.jti == jti && o.status == orderCompleted
	}

	// Coupons: each redeemed coupon by the coupon step of a completed
	// order; each exercise record applied only for a completed order.
	redeemedBy := map[string]string{} // jti -> coupon id
	err = query(ctx, l.coupons, `SELECT id, state, redeemed_jti, redeemed_order_id FROM `+l.coupons.table("coupons"), func(r *sql.Rows) error {
		var id, jti, orderID string
		var state int64
		if err := r.Scan(&id, &state, &jti, &orderID); err != nil {
			return err
		}
		if state != 2 { // redeemed
			return nil
		}
		sum.redeemed++
		if prev, dup := redeemedBy[jti]; dup {
			t.Errorf("coupons %s and %s redeemed by one token", prev, id)
		}
		redeemedBy[jti] = id
		if o, ok := completedBy(jti, "coupons:redeem"); !ok || o.id != orderID {
			t.Errorf("coupon %s redeemed for order %s, which is not a completed order of that token: %s", id, orderID, where(o))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	couponExercises := map[string]int64{}
	err = query(ctx, l.coupons, `SELECT jti, order_id, state FROM `+l.coupons.table("exercises"), func(r *sql.Rows) error {
		var jti, orderID string
		var state int64
		if err := r.Scan(&jti, &orderID, &state); err != nil {
			return err
		}
		couponExercises[jti] = state
		if o, ok := completedBy(jti, "coupons:redeem"); state == exerciseApplied && (!ok || o.id != orderID) {
			t.Errorf("coupon token of order %s applied, but the order is %s", orderID, where(o))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Points: the ledger adds up, per user and per order.
	type pointsOrder struct{ spends, refunds, net int64 }
	perOrder := map[string]*pointsOrder{}
	running := map[string]int64{}
	err = query(ctx, l.points, `SELECT id, user_id, kind, delta, balance_after, order_id FROM `+l.points.table("entries")+` ORDER BY seq`, func(r *sql.Rows) error {
		var id, user, orderID string
		var kind, delta, after int64
		if err := r.Scan(&id, &user, &kind, &delta, &after, &orderID); err != nil {
			return err
		}
		running[user] += delta
		if running[user] != after || after < 0 {
			t.Errorf("points entry %s: balance after %d, the ledger says %d", id, after, running[user])
		}
		if kind == 1 { // grant
			return nil
		}
		po := perOrder[orderID]
		if po == nil {
			po = &pointsOrder{}
			perOrder[orderID] = po
		}
		if kind == 2 {
			po.spends++
		} else {
			po.refunds++
		}
		po.net += delta
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = query(ctx, l.points, `SELECT user_id, balance FROM `+l.points.table("balances"), func(r *sql.Rows) error {
		var user string
		var bal int64
		if err := r.Scan(&user, &bal); err != nil {
			return err
		}
		sum.balances[user] = bal
		if bal != running[user] || bal < 0 {
			t.Errorf("user %s: balance %d, ledger sum %d", user, bal, running[user])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, po := range perOrder {
		o := orders[id]
		if o == nil {
			t.Errorf("points moved for order %s, which does not exist (%+v)", id, *po)
			continue
		}
		s, _ := o.step("points:spend")
		want := int64(0)
		if o.status == orderCompleted {
			want = -s.settlement
		}
		if po.spends > 1 || po.refunds > 1 || po.net != want {
			t.Errorf("order %s (%s): %d spends, %d refunds, net %d points, want net %d", id, where(o), po.spends, po.refunds, po.net, want)
		}
	}
	for _, o := range orders {
		if s, ok := o.step("points:spend"); ok && o.status == orderCompleted {
			if po := perOrder[o.id]; po == nil || po.net != -s.settlement {
				t.Errorf("completed order %s spent no points", o.id)
			}
			sum.spends++
			sum.spent += s.settlement
		}
	}
	err = query(ctx, l.points, `SELECT jti, order_id, state FROM `+l.points.table("exercises"), func(r *sql.Rows) error {
		var jti, orderID string
		var state int64
		if err := r.Scan(&jti, &orderID, &state); err != nil {
			return err
		}
		if o, ok := completedBy(jti, "points:spend"); state == exerciseApplied && (!ok || o.id != orderID) {
			t.Errorf("points token of order %s applied, but the order is %s", orderID, where(o))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Payments: the processor's hold of each payment token is captured for
	// a completed order, voided or refunded for a failed one, and no hold
	// is captured for anything else.
	type hold struct {
		state, captureID string
		amount           int64
	}
	holds := map[string]hold{}
	err = query(ctx, l.processor, `SELECT id, state, capture_id, amount_minor FROM `+l.processor.table("sim_holds"), func(r *sql.Rows) error {
		var id string
		var h hold
		if err := r.Scan(&id, &h.state, &h.captureID, &h.amount); err != nil {
			return err
		}
		holds[id] = h
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	holdOf := map[string]string{} // jti -> hold id
	err = query(ctx, l.payments, `SELECT jti, authorization_id FROM `+l.payments.table("confirmations"), func(r *sql.Rows) error {
		var jti, auth string
		if err := r.Scan(&jti, &auth); err != nil {
			return err
		}
		holdOf[jti] = auth
		if h := holds[auth]; h.state == "captured" || h.state == "refunded" {
			if o, ok := completedBy(jti, "payments:capture"); h.state == "captured" && !ok {
				t.Errorf("hold %s captured, but its token's order is %s", auth, where(o))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	paymentExercises := map[string]string{} // jti -> capture id when applied
	err = query(ctx, l.payments, `SELECT jti, order_id, state, capture_id FROM `+l.payments.table("exercises"), func(r *sql.Rows) error {
		var jti, orderID, capture string
		var state int64
		if err := r.Scan(&jti, &orderID, &state, &capture); err != nil {
			return err
		}
		if state == exerciseApplied {
			paymentExercises[jti] = capture
			if o, ok := completedBy(jti, "payments:capture"); !ok || o.id != orderID {
				t.Errorf("payment token of order %s applied, but the order is %s", orderID, where(o))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orders {
		if s, ok := o.step("coupons:redeem"); ok {
			_, redeemed := redeemedBy[s.jti]
			if o.status == orderCompleted && (!redeemed || couponExercises[s.jti] != exerciseApplied) {
				t.Errorf("completed order %s: its coupon is not redeemed", o.id)
			}
			if o.status == orderFailed && (redeemed || couponExercises[s.jti] == exerciseApplied) {
				t.Errorf("failed order %s: its coupon stays redeemed", o.id)
			}
		}
		s, ok := o.step("payments:capture")
		if !ok {
			continue
		}
		h, found := holds[holdOf[s.jti]]
		switch {
		case !found:
			t.Errorf("order %s: no hold for its payment token", o.id)
		case h.amount != s.settlement:
			t.Errorf("order %s: hold of %d for a settlement of %d", o.id, h.amount, s.settlement)
		case o.status == orderCompleted:
			sum.captures++
			if h.state != "captured" || paymentExercises[s.jti] != h.captureID {
				t.Errorf("completed order %s: hold %s, exercise capture %q", o.id, h.state, paymentExercises[s.jti])
			}
		case o.status == orderFailed:
			if h.state != "voided" && h.state != "refunded" {
				t.Errorf("failed order %s: hold %s, want voided or refunded", o.id, h.state)
			}
		}
	}
	return sum
}

// histogram counts strings, for the logs.
type histogram map[string]int

func (h histogram) String() string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %4d  %s", h[k], k)
	}
	return b.String()
}
