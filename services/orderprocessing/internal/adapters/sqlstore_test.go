package adapters_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// t0 is the fixed "now" of the suite. It has a microsecond part, the
// precision the app stores times at, so that a round trip through either
// database must be exact; no case reads the wall clock.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	alice = "usr_alice"
	bob   = "usr_bob"
	// prober owns the orders that wantUnconsumed places, so that they never
	// show up in the lists a case asserts on.
	prober = "usr_prober"
)

func eur(n int64) money.Money { return money.Money{AmountMinor: n, Currency: "EUR"} }

// cart is two priced lines totalling 4900 EUR, which the steps of freshSteps
// settle exactly.
func cart() []domain.Line {
	return []domain.Line{
		{SKU: "TEA-GREEN-100G", Name: "Green tea, 100 g", Quantity: 2, UnitPrice: eur(1250), LineTotal: eur(2500)},
		{SKU: "MUG-STONE", Name: "Stoneware mug", Quantity: 1, UnitPrice: eur(2400), LineTotal: eur(2400)},
	}
}

// freshSteps returns the three steps of an order, each with a jti never used
// before and a sealed token of its own, in the saga's order (stage, then
// capability).
func freshSteps() []domain.Step {
	step := func(capability, issuer string, stage int, amount int64) domain.Step {
		jti := ids.New("")
		return domain.Step{Capability: capability, Issuer: issuer, Stage: stage, State: domain.StepPending,
			Settlement: eur(amount), JTI: jti, ExpiresAt: at(2 * time.Minute),
			SealedToken: "v1." + capability + "." + jti}
	}
	return []domain.Step{
		step("coupons:redeem", "coupons", 1, 500),
		step("points:spend", "points", 1, 400),
		step("payments:capture", "payments", 2, 4000),
	}
}

// newOrder builds a pending order for co under key, as the app does: a new
// id on every call, so that two calls are two distinct requests, each with
// its transaction and trace context (read back by every round trip).
func newOrder(co domain.Checkout, key string, steps []domain.Step) domain.Order {
	return domain.Order{ID: ids.New("ord"), CheckoutID: co.ID, UserID: co.UserID, Lines: co.Lines, Total: co.Total,
		Status: domain.OrderPending, Steps: steps, IdempotencyKey: key, Version: 1, CreatedAt: t0, UpdatedAt: t0,
		Txn: ids.New("txn"), TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
}

// newStore builds a store on db with a replay guard of its own (its own
// fast-path cache, like another replica's) whose cache lifetimes follow
// t0, not the wall clock.
func newStore(t *testing.T, db *sqldb.DB) *adapters.Store {
	t.Helper()
	guard, err := replay.New(db, replay.WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(guard.Close)
	s, err := adapters.NewStore(t.Context(), db, guard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixture is one store on a database of its own, so that cases listing
// orders (Orders, Unfinished) see only what they stored.
type fixture struct {
	t  *testing.T
	db *sqldb.DB
	s  *adapters.Store
}

// with returns the fixture for subtest t: a helper must fail the test that
// calls it, never its parent.
func (f *fixture) with(t *testing.T) *fixture { return &fixture{t: t, db: f.db, s: f.s} }

// createCheckout stores co and fails unless it was created.
func (f *fixture) createCheckout(co domain.Checkout) domain.Checkout {
	f.t.Helper()
	got, created, err := f.s.CreateCheckout(f.t.Context(), co, domain.IssuedToken{})
	if err != nil || !created {
		f.t.Fatalf("CreateCheckout(%s) = created %v, %v", co.ID, created, err)
	}
	return got
}

// checkout stores an open checkout of user under key, open until 30 minutes
// after t0.
func (f *fixture) checkout(user, key string) domain.Checkout {
	f.t.Helper()
	return f.createCheckout(domain.Checkout{ID: ids.New("op"), UserID: user, Lines: cart(), Total: eur(4900),
		Status: domain.CheckoutOpen, IdempotencyKey: key, CreatedAt: t0, ExpiresAt: at(30 * time.Minute)})
}

// place stores o at t0 and fails unless it was created.
func (f *fixture) place(o domain.Order) domain.Order {
	f.t.Helper()
	got, created, err := f.s.PlaceOrder(f.t.Context(), o, t0)
	if err != nil || !created || got.ID != o.ID {
		f.t.Fatalf("PlaceOrder(%s) = %s created %v, %v", o.ID, got.ID, created, err)
	}
	return got
}

// placed opens a checkout for user and places an order with fresh steps for
// it under key.
func (f *fixture) placed(user, key string) domain.Order {
	f.t.Helper()
	return f.place(newOrder(f.checkout(user, ""), key, freshSteps()))
}

// order reads an order and fails on any error.
func (f *fixture) order(id string) domain.Order {
	f.t.Helper()
	o, err := f.s.Order(f.t.Context(), id)
	if err != nil {
		f.t.Fatalf("Order(%s): %v", id, err)
	}
	return o
}

// fixtureOwner is the lease owner of the fixture's own updates.
const fixtureOwner = "fixture"

// lease claims an order for the fixture's own updates, at t0 for an hour,
// and fails unless it gets the lease.
func (f *fixture) lease(id string) domain.Lease {
	f.t.Helper()
	lease, ok, err := f.s.Claim(f.t.Context(), id, fixtureOwner, t0, at(time.Hour))
	if err != nil || !ok {
		f.t.Fatalf("Claim(%s) for the fixture: %v, %v", id, ok, err)
	}
	return lease
}

// transition reads order id, applies fn and writes the result as one
// transition under lease, as the saga does with the order it holds.
func transition(s *adapters.Store, ctx context.Context, id string, lease domain.Lease, fn func(*domain.Order) error) (domain.Order, error) {
	prev, err := s.Order(ctx, id)
	if err != nil {
		return domain.Order{}, err
	}
	next := prev
	next.Steps = slices.Clone(prev.Steps)
	if err := fn(&next); err != nil {
		return domain.Order{}, err
	}
	return s.Transition(ctx, lease, prev, next, false)
}

// update applies fn to the order under a lease of the fixture's own,
// released after, and fails on any error.
func (f *fixture) update(id string, fn func(*domain.Order)) domain.Order {
	f.t.Helper()
	lease := f.lease(id)
	o, err := transition(f.s, f.t.Context(), id, lease, func(o *domain.Order) error { fn(o); return nil })
	if err != nil {
		f.t.Fatalf("UpdateOrder(%s): %v", id, err)
	}
	if err := f.s.Release(f.t.Context(), id, lease); err != nil {
		f.t.Fatalf("Release(%s): %v", id, err)
	}
	return o
}

func (f *fixture) setStatus(id string, s domain.OrderStatus) {
	f.t.Helper()
	f.update(id, func(o *domain.Order) { o.Status = s })
}

// claim claims an order and fails on an error (not on a refusal).
func (f *fixture) claim(id, owner string, now, until time.Time) bool {
	f.t.Helper()
	_, ok, err := f.s.Claim(f.t.Context(), id, owner, now, until)
	if err != nil {
		f.t.Fatalf("Claim(%s, %s): %v", id, owner, err)
	}
	return ok
}

// wantNoOrder fails unless no order id is stored.
func (f *fixture) wantNoOrder(id string) {
	f.t.Helper()
	if o, err := f.s.Order(f.t.Context(), id); !errors.Is(err, domain.ErrNotFound) {
		f.t.Fatalf("Order(%s) = %+v, %v; want ErrNotFound: a refused or repeated request left an order", id, o, err)
	}
}

// wantCheckout fails unless checkout id has status and order id orderID as
// stored.
func (f *fixture) wantCheckout(id string, status domain.CheckoutStatus, orderID string) {
	f.t.Helper()
	co, err := f.s.Checkout(f.t.Context(), id)
	if err != nil || co.Status != status || co.OrderID != orderID {
		f.t.Fatalf("Checkout(%s) = status %d, order %q, %v; want status %d, order %q", id, co.Status, co.OrderID, err, status, orderID)
	}
}

// wantUnconsumed fails unless the (issuer, jti) pairs of steps are still
// usable: an order carrying them, for a new open checkout, is created. Use
// it after a refused request to show that its jtis were not consumed.
func (f *fixture) wantUnconsumed(steps ...domain.Step) {
	f.t.Helper()
	probe := newOrder(f.checkout(prober, ""), ids.New("probe"), slices.Clone(steps))
	got, created, err := f.s.PlaceOrder(f.t.Context(), probe, t0)
	if err != nil || !created || got.ID != probe.ID {
		f.t.Fatalf("the jtis of a refused request were left consumed: probe order = created %v, %v", created, err)
	}
}

// userOrders lists the ids of all of user's orders, newest first.
func (f *fixture) userOrders(user string) []string {
	f.t.Helper()
	os, err := f.s.Orders(f.t.Context(), user, "", 1000)
	if err != nil {
		f.t.Fatalf("Orders(%s): %v", user, err)
	}
	return orderIDs(os)
}

func orderIDs(os []domain.Order) []string {
	out := []string{}
	for _, o := range os {
		out = append(out, o.ID)
	}
	return out
}

// recordStepWrites installs a trigger that notes every UPDATE of a steps
// row, and returns a function that returns (sorted) and forgets the
// capabilities written since its last call, failing t on an error. It makes "only the changed
// steps are written" observable.
func (f *fixture) recordStepWrites() func(t *testing.T) []string {
	f.t.Helper()
	ctx := f.t.Context()
	ddl := []string{
		`CREATE TABLE step_writes (capability TEXT NOT NULL)`,
		`CREATE TRIGGER steps_written AFTER UPDATE ON steps BEGIN
			INSERT INTO step_writes (capability) VALUES (NEW.capability); END`,
	}
	if f.db.Dialect() == sqldb.Postgres {
		ddl = []string{
			`CREATE TABLE step_writes (capability TEXT NOT NULL)`,
			`CREATE FUNCTION note_step_write() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO step_writes (capability) VALUES (NEW.capability); RETURN NEW; END $$`,
			`CREATE TRIGGER steps_written AFTER UPDATE ON steps FOR EACH ROW EXECUTE FUNCTION note_step_write()`,
		}
	}
	for _, q := range ddl {
		if _, err := f.db.SQL().ExecContext(ctx, q); err != nil {
			f.t.Fatalf("install step write trigger: %v", err)
		}
	}
	return func(t *testing.T) []string {
		t.Helper()
		rows, err := f.db.SQL().QueryContext(t.Context(), `SELECT capability FROM step_writes ORDER BY capability`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		written := []string{}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			written = append(written, c)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.SQL().ExecContext(t.Context(), `DELETE FROM step_writes`); err != nil {
			t.Fatal(err)
		}
		return written
	}
}

// canonical strips what a database round trip may change without changing
// a time's instant: location and representation.
func canonical(t time.Time) time.Time { return time.Unix(t.Unix(), int64(t.Nanosecond())).UTC() }

// orderDiff returns "" when got and want are the same order, else both.
func orderDiff(got, want domain.Order) string {
	norm := func(o domain.Order) domain.Order {
		o.CreatedAt, o.UpdatedAt = canonical(o.CreatedAt), canonical(o.UpdatedAt)
		o.Steps = slices.Clone(o.Steps)
		for i := range o.Steps {
			o.Steps[i].ExpiresAt = canonical(o.Steps[i].ExpiresAt)
		}
		return o
	}
	if reflect.DeepEqual(norm(got), norm(want)) {
		return ""
	}
	return fmt.Sprintf("\n got: %+v\nwant: %+v", got, want)
}

// checkoutDiff returns "" when got and want are the same checkout, else both.
func checkoutDiff(got, want domain.Checkout) string {
	norm := func(c domain.Checkout) domain.Checkout {
		c.CreatedAt, c.ExpiresAt = canonical(c.CreatedAt), canonical(c.ExpiresAt)
		return c
	}
	if reflect.DeepEqual(norm(got), norm(want)) {
		return ""
	}
	return fmt.Sprintf("\n got: %+v\nwant: %+v", got, want)
}

// contractCase is one behaviour every OrderProcessing store must have; it
// runs on a fresh store per database.
type contractCase struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// TestStoreContract is the one suite every OrderProcessing store passes
// (domain.Repository and its documented semantics), run against SQLite and
// PostgreSQL. Each case gets a database of its own.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	for _, tc := range contractCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
				tc.run(t, &fixture{t: t, db: db, s: newStore(t, db)})
			})
		})
	}
}

func contractCases() []contractCase {
	return []contractCase{
		{"products are the seeded catalog", testProducts},
		{"a second store on a migrated database keeps its data", testReopen},
		{"checkout round trip", testCheckoutRoundTrip},
		{"checkout idempotency is per user and key", testCheckoutIdempotency},
		{"cancel checkout", testCancelCheckout},
		{"place order stores order, steps, sealed tokens, jtis and placed checkout at once", testPlaceOrder},
		{"place order with a used key returns the stored order and writes nothing", testPlaceOrderRetry},
		{"place order refusals leave nothing behind", testPlaceOrderRefusals},
		{"place order edge cases that succeed", testPlaceOrderAccepted},
		{"place order fails on a conflict a retry cannot resolve", testPlaceOrderPersistentConflict},
		{"orders by owner, newest first, by cursor", testOrders},
		{"a transition saves the order, writing only the changed steps", testTransition},
		{"a transition from a stale version writes nothing", testTransitionStale},
		{"a transition to a final status releases the lease with it", testTransitionRelease},
		{"claim and release", testClaimRelease},
		{"updates are fenced by the lease epoch", testFencedUpdates},
		{"claim refuses final and unknown orders", testClaimFinal},
		{"unfinished lists orders due for the saga", testUnfinished},
		{"the unfinished-orders index skips every final status", testUnfinishedIndex},
		{"operator lists the orders that need one, oldest first", testNeedingOperator},
		{"operator update frees the lease, fences its holder, writes only the changed steps", testOperatorUpdate},
		{"operator retry and resolve round trip", testOperatorRetryResolve},
		{"concurrent claims: exactly one owner wins", testConcurrentClaims},
		{"concurrent places with one key: exactly one order", testConcurrentSameKey},
		{"concurrent places of one checkout under different keys: exactly one order", testConcurrentSameCheckout},
		{"concurrent places sharing one jti: exactly one consumes it", testConcurrentSharedJTI},
		{"concurrent checkouts with one key: exactly one checkout", testConcurrentCheckouts},
		{"concurrent transitions from one version: one is written", testConcurrentUpdates},
	}
}

func testProducts(t *testing.T, f *fixture) {
	got, err := f.s.Products(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]domain.Product{
		"TEA-GREEN-100G": {SKU: "TEA-GREEN-100G", Name: "Green tea, 100 g", Description: "Sencha from Shizuoka, first flush.", UnitPrice: eur(1250)},
		"TEA-BLACK-250G": {SKU: "TEA-BLACK-250G", Name: "Black tea, 250 g", Description: "Assam, malty and strong.", UnitPrice: eur(1890)},
		"MUG-STONE":      {SKU: "MUG-STONE", Name: "Stoneware mug", Description: "Hand-glazed, 350 ml.", UnitPrice: eur(2400)},
		"KETTLE-GOOSE":   {SKU: "KETTLE-GOOSE", Name: "Gooseneck kettle", Description: "Stainless steel, 1 l, for precise pouring.", UnitPrice: eur(5900)},
		"INFUSER-STEEL":  {SKU: "INFUSER-STEEL", Name: "Tea infuser", Description: "Fine mesh basket that fits most mugs.", UnitPrice: eur(790)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Products =\n%+v\nwant\n%+v", got, want)
	}
}

func testReopen(t *testing.T, f *fixture) {
	o := f.placed(alice, "k")
	again := newStore(t, f.db) // migrates again: must be a no-op
	got, err := again.Order(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := orderDiff(got, o); d != "" {
		t.Fatalf("order through the second store:%s", d)
	}
	if p, err := again.Products(t.Context()); err != nil || len(p) != 5 {
		t.Fatalf("catalog after a second migration: %d products, %v; want the 5 seeded once", len(p), err)
	}
}

func testCheckoutRoundTrip(t *testing.T, f *fixture) {
	ctx := t.Context()
	co := domain.Checkout{ID: ids.New("op"), UserID: alice, Lines: cart(), Total: eur(4900), Status: domain.CheckoutOpen,
		IdempotencyKey: "ck", CreatedAt: t0, ExpiresAt: at(30 * time.Minute)}
	stored, created, err := f.s.CreateCheckout(ctx, co, domain.IssuedToken{})
	if err != nil || !created {
		t.Fatalf("CreateCheckout = created %v, %v", created, err)
	}
	if d := checkoutDiff(stored, co); d != "" {
		t.Fatalf("CreateCheckout returned%s", d)
	}
	got, err := f.s.Checkout(ctx, co.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := checkoutDiff(got, co); d != "" {
		t.Fatalf("Checkout read back%s", d)
	}
	if _, err := f.s.Checkout(ctx, ids.New("op")); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown checkout: %v, want ErrNotFound", err)
	}
}

func testCheckoutIdempotency(t *testing.T, f *fixture) {
	ctx := t.Context()
	first := f.checkout(alice, "k")
	other := cart()[:1]
	for _, tc := range []struct {
		name        string
		user, key   string
		wantCreated bool
	}{
		{"same user, same key, other cart: the first checkout", alice, "k", false},
		{"another user, same key: a checkout of their own", bob, "k", true},
		{"same user, another key", alice, "k2", true},
		{"same user, no key: never deduplicated", alice, "", true},
		{"same user, no key, again", alice, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			co := domain.Checkout{ID: ids.New("op"), UserID: tc.user, Lines: other, Total: eur(2500),
				Status: domain.CheckoutOpen, IdempotencyKey: tc.key, CreatedAt: at(time.Minute), ExpiresAt: at(31 * time.Minute)}
			got, created, err := f.s.CreateCheckout(ctx, co, domain.IssuedToken{})
			if err != nil || created != tc.wantCreated {
				t.Fatalf("CreateCheckout = created %v, %v; want created %v", created, err, tc.wantCreated)
			}
			if !tc.wantCreated {
				if d := checkoutDiff(got, first); d != "" {
					t.Fatalf("a reused key returned another checkout than the stored one%s", d)
				}
				if _, err := f.s.Checkout(ctx, co.ID); !errors.Is(err, domain.ErrNotFound) {
					t.Fatalf("a reused key stored a second checkout: %v", err)
				}
				return
			}
			if d := checkoutDiff(got, co); d != "" {
				t.Fatalf("created checkout%s", d)
			}
			if _, err := f.s.Checkout(ctx, co.ID); err != nil {
				t.Fatalf("created checkout not stored: %v", err)
			}
		})
	}
}

func testCancelCheckout(t *testing.T, f *fixture) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		// setup returns the checkout to cancel and the order it was placed
		// for, if any.
		setup      func(f *fixture) (id, orderID string)
		wantErr    error
		wantStatus domain.CheckoutStatus
	}{
		{"open", func(f *fixture) (string, string) { return f.checkout(alice, "").ID, "" }, nil, domain.CheckoutCancelled},
		{"already cancelled: idempotent", func(f *fixture) (string, string) {
			co := f.checkout(alice, "")
			if _, err := f.s.CancelCheckout(ctx, co.ID, t0); err != nil {
				f.t.Fatal(err)
			}
			return co.ID, ""
		}, nil, domain.CheckoutCancelled},
		{"open past its expiry", func(f *fixture) (string, string) {
			co := f.createCheckout(domain.Checkout{ID: ids.New("op"), UserID: alice, Lines: cart(), Total: eur(4900),
				Status: domain.CheckoutOpen, CreatedAt: at(-time.Hour), ExpiresAt: at(-30 * time.Minute)})
			return co.ID, ""
		}, nil, domain.CheckoutCancelled},
		{"placed", func(f *fixture) (string, string) {
			o := f.placed(alice, ids.New("k"))
			return o.CheckoutID, o.ID
		}, domain.ErrCheckoutClosed, domain.CheckoutPlaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			id, orderID := tc.setup(f)
			got, err := f.s.CancelCheckout(ctx, id, t0)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CancelCheckout = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (got.ID != id || got.Status != tc.wantStatus) {
				t.Fatalf("CancelCheckout returned %s status %d, want %s status %d", got.ID, got.Status, id, tc.wantStatus)
			}
			f.wantCheckout(id, tc.wantStatus, orderID)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		if _, err := f.s.CancelCheckout(ctx, ids.New("op"), t0); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("CancelCheckout(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func testPlaceOrder(t *testing.T, f *fixture) {
	ctx := t.Context()
	co := f.checkout(alice, "")
	steps := freshSteps()
	want := newOrder(co, "k", steps)
	// Handed over out of the saga's order: the store reads them back in it.
	o := want
	o.Steps = slices.Clone(steps)
	slices.Reverse(o.Steps)
	stored, created, err := f.s.PlaceOrder(ctx, o, t0)
	if err != nil || !created || stored.ID != o.ID {
		t.Fatalf("PlaceOrder = %s created %v, %v", stored.ID, created, err)
	}
	if d := orderDiff(f.order(o.ID), want); d != "" {
		t.Fatalf("Order read back (steps by stage, then capability, sealed tokens as given)%s", d)
	}
	f.wantCheckout(co.ID, domain.CheckoutPlaced, o.ID)
	// Every jti of the order is consumed, through the database (a store
	// with a cold cache, like another replica) as well as this store.
	other := newStore(t, f.db)
	for i, st := range steps {
		replayed := newOrder(f.checkout(alice, ""), ids.New("k"), freshSteps())
		replayed.Steps[i].JTI = st.JTI
		for name, s := range map[string]*adapters.Store{"this store": f.s, "another store": other} {
			if _, _, err := s.PlaceOrder(ctx, replayed, t0); !errors.Is(err, replay.ErrReplayed) {
				t.Fatalf("%s: reusing the jti of %s: %v, want replay.ErrReplayed", name, st.Capability, err)
			}
		}
	}
	if _, err := f.s.Order(ctx, ids.New("ord")); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown order: %v, want ErrNotFound", err)
	}
}

func testPlaceOrderRetry(t *testing.T, f *fixture) {
	ctx := t.Context()
	first := f.placed(alice, "k")
	// The stored order as it is now, not as first placed.
	first = f.update(first.ID, func(o *domain.Order) { o.Status = domain.OrderInProgress; o.UpdatedAt = at(time.Second) })
	firstCheckout, err := f.s.Checkout(ctx, first.CheckoutID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// retry builds the repeated request and returns the checkout it
		// names other than the first's ("" if none) and its fresh steps.
		retry func(f *fixture) (o domain.Order, otherCheckout string, fresh []domain.Step)
	}{
		{"same checkout, same tokens", func(f *fixture) (domain.Order, string, []domain.Step) {
			return newOrder(firstCheckout, "k", slices.Clone(first.Steps)), "", nil
		}},
		{"another open checkout, fresh tokens", func(f *fixture) (domain.Order, string, []domain.Step) {
			co := f.checkout(alice, "")
			steps := freshSteps()
			return newOrder(co, "k", steps), co.ID, steps
		}},
		{"same checkout, fresh tokens", func(f *fixture) (domain.Order, string, []domain.Step) {
			steps := freshSteps()
			return newOrder(firstCheckout, "k", steps), "", steps
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			o, otherCheckout, fresh := tc.retry(f)
			got, created, err := f.s.PlaceOrder(ctx, o, at(time.Minute))
			if err != nil || created {
				t.Fatalf("PlaceOrder(used key) = created %v, %v; want the stored order", created, err)
			}
			if d := orderDiff(got, first); d != "" {
				t.Fatalf("PlaceOrder(used key) returned%s", d)
			}
			f.wantNoOrder(o.ID)
			if otherCheckout != "" {
				f.wantCheckout(otherCheckout, domain.CheckoutOpen, "")
			}
			f.wantCheckout(first.CheckoutID, domain.CheckoutPlaced, first.ID)
			if got := f.userOrders(alice); !slices.Equal(got, []string{first.ID}) {
				t.Fatalf("alice's orders = %v, want only %s", got, first.ID)
			}
			if fresh != nil {
				f.wantUnconsumed(fresh...)
			}
		})
	}
}

func testPlaceOrderRefusals(t *testing.T, f *fixture) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		// setup returns the order to place, when to place it, and the steps
		// whose jtis must be left unconsumed by the refusal.
		setup   func(f *fixture) (o domain.Order, now time.Time, fresh []domain.Step)
		wantErr error
		// the checkout's status and order after the refusal, unchanged;
		// status 0 when there is no such checkout.
		wantStatus domain.CheckoutStatus
	}{
		{
			name: "a jti this store consumed before",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				prev := f.placed(alice, ids.New("k"))
				o := newOrder(f.checkout(alice, ""), "k", freshSteps())
				o.Steps[1].JTI = prev.Steps[1].JTI
				return o, t0, []domain.Step{o.Steps[0], o.Steps[2]}
			},
			wantErr: replay.ErrReplayed, wantStatus: domain.CheckoutOpen,
		},
		{
			name: "a jti another replica consumed (only the database knows)",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				other := &fixture{t: f.t, db: f.db, s: newStore(f.t, f.db)}
				prev := other.placed(alice, ids.New("k"))
				o := newOrder(f.checkout(alice, ""), "k", freshSteps())
				o.Steps[2].JTI = prev.Steps[2].JTI
				return o, t0, []domain.Step{o.Steps[0], o.Steps[1]}
			},
			wantErr: replay.ErrReplayed, wantStatus: domain.CheckoutOpen,
		},
		{
			name: "one jti twice in the order",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				o := newOrder(f.checkout(alice, ""), "k", freshSteps())
				o.Steps[2].Issuer, o.Steps[2].JTI = o.Steps[0].Issuer, o.Steps[0].JTI
				return o, t0, []domain.Step{o.Steps[0], o.Steps[1]}
			},
			wantErr: replay.ErrReplayed, wantStatus: domain.CheckoutOpen,
		},
		{
			name: "checkout placed under another key",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				prev := f.placed(alice, ids.New("k"))
				co, err := f.s.Checkout(ctx, prev.CheckoutID)
				if err != nil {
					f.t.Fatal(err)
				}
				o := newOrder(co, "k", freshSteps())
				return o, t0, o.Steps
			},
			wantErr: domain.ErrCheckoutClosed, wantStatus: domain.CheckoutPlaced,
		},
		{
			name: "checkout cancelled",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				co := f.checkout(alice, "")
				if _, err := f.s.CancelCheckout(ctx, co.ID, t0); err != nil {
					f.t.Fatal(err)
				}
				o := newOrder(co, "k", freshSteps())
				return o, t0, o.Steps
			},
			wantErr: domain.ErrCheckoutClosed, wantStatus: domain.CheckoutCancelled,
		},
		{
			name: "checkout expired: now is its expiry",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				co := f.checkout(alice, "")
				o := newOrder(co, "k", freshSteps())
				return o, co.ExpiresAt, o.Steps
			},
			wantErr: domain.ErrCheckoutClosed, wantStatus: domain.CheckoutOpen,
		},
		{
			name: "unknown checkout",
			setup: func(f *fixture) (domain.Order, time.Time, []domain.Step) {
				o := newOrder(domain.Checkout{ID: ids.New("op"), UserID: alice, Lines: cart(), Total: eur(4900)}, "k", freshSteps())
				return o, t0, o.Steps
			},
			wantErr: domain.ErrNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			o, now, fresh := tc.setup(f)
			placedBefore := f.userOrders(alice)
			// A placed checkout keeps the order placed for it.
			var prevOrder string
			if tc.wantStatus == domain.CheckoutPlaced {
				co, err := f.s.Checkout(ctx, o.CheckoutID)
				if err != nil {
					f.t.Fatal(err)
				}
				prevOrder = co.OrderID
			}
			got, created, err := f.s.PlaceOrder(ctx, o, now)
			if !errors.Is(err, tc.wantErr) || created || got.ID != "" {
				t.Fatalf("PlaceOrder = %q created %v, %v; want %v", got.ID, created, err, tc.wantErr)
			}
			f.wantNoOrder(o.ID)
			if after := f.userOrders(alice); !slices.Equal(after, placedBefore) {
				t.Fatalf("alice's orders went from %v to %v", placedBefore, after)
			}
			if tc.wantStatus != 0 {
				f.wantCheckout(o.CheckoutID, tc.wantStatus, prevOrder)
			}
			f.wantUnconsumed(fresh...)
		})
	}
}

func testPlaceOrderAccepted(t *testing.T, f *fixture) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		setup func(f *fixture) (domain.Order, time.Time)
	}{
		{"the same jti from another issuer is another token", func(f *fixture) (domain.Order, time.Time) {
			prev := f.placed(alice, ids.New("k"))
			o := newOrder(f.checkout(alice, ""), ids.New("k"), freshSteps())
			o.Steps[1].JTI = prev.Steps[0].JTI // points, not coupons
			return o, t0
		}},
		{"a checkout one microsecond before its expiry is open", func(f *fixture) (domain.Order, time.Time) {
			co := f.checkout(alice, "")
			return newOrder(co, ids.New("k"), freshSteps()), co.ExpiresAt.Add(-time.Microsecond)
		}},
		{"an idempotency key is the user's own", func(f *fixture) (domain.Order, time.Time) {
			f.placed(alice, "shared-key")
			return newOrder(f.checkout(bob, ""), "shared-key", freshSteps()), t0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			o, now := tc.setup(f)
			got, created, err := f.s.PlaceOrder(ctx, o, now)
			if err != nil || !created || got.ID != o.ID {
				t.Fatalf("PlaceOrder = %s created %v, %v; want %s created", got.ID, created, err, o.ID)
			}
			if d := orderDiff(f.order(o.ID), o); d != "" {
				t.Fatalf("Order read back%s", d)
			}
			f.wantCheckout(o.CheckoutID, domain.CheckoutPlaced, o.ID)
		})
	}
}

// testPlaceOrderPersistentConflict places orders that break a unique
// constraint for a reason other than a concurrent request: the store must
// refuse them, not retry them. The app never builds such orders (ids are
// random, domain.Plan refuses two tokens for one capability); the store
// must still fail cleanly rather than loop. The deadline only stops a loop:
// a correct store answers at once, and the assertion is on the error.
func testPlaceOrderPersistentConflict(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture) (o domain.Order, fresh []domain.Step)
	}{
		{"an order id already used", func(f *fixture) (domain.Order, []domain.Step) {
			prev := f.placed(alice, ids.New("k"))
			o := newOrder(f.checkout(alice, ""), ids.New("k"), freshSteps())
			o.ID = prev.ID
			return o, o.Steps
		}},
		{"two steps for one capability", func(f *fixture) (domain.Order, []domain.Step) {
			o := newOrder(f.checkout(alice, ""), ids.New("k"), freshSteps())
			o.Steps[2].Capability = o.Steps[0].Capability
			return o, o.Steps[:2]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			o, fresh := tc.setup(f)
			before, beforeErr := f.s.Order(t.Context(), o.ID)
			// A store that retried such a conflict without end would not
			// return: the test binary's -timeout catches it.
			_, created, err := f.s.PlaceOrder(t.Context(), o, t0)
			if err == nil || created {
				t.Fatalf("PlaceOrder = created %v, %v; want an error", created, err)
			}
			if after, afterErr := f.s.Order(t.Context(), o.ID); !errors.Is(afterErr, beforeErr) || orderDiff(after, before) != "" {
				t.Fatalf("the refused order changed what is stored under its id: %v%s", afterErr, orderDiff(after, before))
			}
			f.wantCheckout(o.CheckoutID, domain.CheckoutOpen, "")
			f.wantUnconsumed(fresh...)
		})
	}
}

func testOrders(t *testing.T, f *fixture) {
	ctx := t.Context()
	a1 := f.placed(alice, "a1")
	b1 := f.placed(bob, "b1")
	a2 := f.placed(alice, "a2")
	a3 := f.placed(alice, "a3")
	b2 := f.placed(bob, "b2")
	a4 := f.placed(alice, "a4")
	a5 := f.placed(alice, "a5")

	all, err := f.s.Orders(ctx, alice, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Order{a5, a4, a3, a2, a1}
	if len(all) != len(want) {
		t.Fatalf("Orders(alice) = %v, want %v", orderIDs(all), orderIDs(want))
	}
	for i := range want {
		if d := orderDiff(all[i], want[i]); d != "" {
			t.Fatalf("Orders(alice)[%d], with its steps%s", i, d)
		}
	}
	for _, tc := range []struct {
		name, user, after string
		limit             int
		want              []domain.Order
	}{
		{"first page", alice, "", 2, []domain.Order{a5, a4}},
		{"second page", alice, a4.ID, 2, []domain.Order{a3, a2}},
		{"last page", alice, a2.ID, 2, []domain.Order{a1}},
		{"past the last", alice, a1.ID, 2, nil},
		{"another user's", bob, "", 10, []domain.Order{b2, b1}},
		{"a cursor naming another user's order shows nothing", alice, b2.ID, 10, nil},
		{"an unknown cursor shows nothing", alice, ids.New("ord"), 10, nil},
		{"a user without orders", "usr_nobody", "", 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.s.Orders(ctx, tc.user, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(orderIDs(got), orderIDs(tc.want)) {
				t.Fatalf("Orders(%s, after %q, %d) = %v, want %v", tc.user, tc.after, tc.limit, orderIDs(got), orderIDs(tc.want))
			}
		})
	}
}

func testTransition(t *testing.T, f *fixture) {
	ctx := t.Context()
	o := f.placed(alice, "k")
	other := f.placed(alice, "k-other")
	written := f.recordStepWrites()
	points := slices.IndexFunc(o.Steps, func(s domain.Step) bool { return s.Capability == "points:spend" })
	payments := slices.IndexFunc(o.Steps, func(s domain.Step) bool { return s.Capability == "payments:capture" })

	for _, tc := range []struct {
		name        string
		fn          func(*domain.Order)
		wantWritten []string
	}{
		{"order fields only: no step written", func(o *domain.Order) {
			o.Status, o.UpdatedAt = domain.OrderInProgress, at(time.Second)
		}, []string{}},
		{"one step: only it is written", func(o *domain.Order) {
			st := &o.Steps[points]
			st.State, st.Reference, st.Attempts, st.LastError = domain.StepApplied, "pts_123", 2, ""
			o.UpdatedAt = at(2 * time.Second)
		}, []string{"points:spend"}},
		{"a step's attempts and error, the order's failure", func(o *domain.Order) {
			st := &o.Steps[payments]
			st.State, st.Attempts, st.LastError = domain.StepFailed, 1, "FailedPrecondition: card declined"
			o.Status, o.FailureReason = domain.OrderCompensating, "payments:capture refused: card declined"
			o.UpdatedAt = at(3 * time.Second)
		}, []string{"payments:capture"}},
		{"two steps", func(o *domain.Order) {
			o.Steps[points].State = domain.StepCompensating
			o.Steps[payments].State = domain.StepCompensated
		}, []string{"payments:capture", "points:spend"}},
		{"nothing changed: the version still moves", func(*domain.Order) {}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.with(t)
			stored := f.order(o.ID)
			want := stored
			want.Steps = slices.Clone(stored.Steps)
			tc.fn(&want)
			want.Version = stored.Version + 1
			lease := f.lease(o.ID)
			defer f.s.Release(ctx, o.ID, lease)
			next := stored
			next.Steps = slices.Clone(stored.Steps)
			tc.fn(&next)
			got, err := f.s.Transition(ctx, lease, stored, next, false)
			if err != nil {
				t.Fatal(err)
			}
			if d := orderDiff(got, want); d != "" {
				t.Fatalf("Transition returned%s", d)
			}
			if d := orderDiff(f.order(o.ID), want); d != "" {
				t.Fatalf("Order read back%s", d)
			}
			if w := written(t); !slices.Equal(w, tc.wantWritten) {
				t.Fatalf("steps written: %v, want %v", w, tc.wantWritten)
			}
		})
	}
	if d := orderDiff(f.order(other.ID), other); d != "" {
		t.Fatalf("updates of one order changed another%s", d)
	}
	t.Run("unknown order", func(t *testing.T) {
		unknown := o
		unknown.ID = ids.New("ord")
		if _, err := f.s.Transition(ctx, domain.Lease{Owner: fixtureOwner, Epoch: 1}, unknown, unknown, false); !errors.Is(err, domain.ErrLeaseLost) {
			t.Fatalf("Transition(unknown) = %v, want ErrLeaseLost", err)
		}
	})
}

// A transition is written only over the version it was made from: one made
// from a state another write has moved on from is refused, and writes no
// step either.
func testTransitionStale(t *testing.T, f *fixture) {
	ctx := t.Context()
	o := f.placed(alice, "k")
	lease := f.lease(o.ID)
	defer f.s.Release(ctx, o.ID, lease)
	moved, err := transition(f.s, ctx, o.ID, lease, func(o *domain.Order) error { o.Status = domain.OrderInProgress; return nil })
	if err != nil {
		t.Fatal(err)
	}
	written := f.recordStepWrites()
	stale := o // the version before moved
	stale.Steps = slices.Clone(o.Steps)
	stale.Status, stale.FailureReason = domain.OrderCompensating, "stale"
	for i := range stale.Steps {
		stale.Steps[i].State = domain.StepFailed
	}
	if _, err := f.s.Transition(ctx, lease, o, stale, false); !errors.Is(err, domain.ErrLeaseLost) {
		t.Fatalf("Transition from a stale version = %v, want ErrLeaseLost", err)
	}
	if d := orderDiff(f.order(o.ID), moved); d != "" {
		t.Fatalf("a stale transition changed the order%s", d)
	}
	if w := written(t); len(w) != 0 {
		t.Fatalf("a stale transition wrote steps %v", w)
	}
}

// The transition that ends an order gives its lease up in the same write:
// another owner may claim nothing (the order is final), and no Release is
// needed.
func testTransitionRelease(t *testing.T, f *fixture) {
	ctx := t.Context()
	o := f.placed(alice, "k")
	lease := f.lease(o.ID)
	next := o
	next.Steps = slices.Clone(o.Steps)
	next.Status = domain.OrderCompleted
	for i := range next.Steps {
		next.Steps[i].State = domain.StepApplied
	}
	if _, err := f.s.Transition(ctx, lease, o, next, true); err != nil {
		t.Fatal(err)
	}
	var owner string
	if err := f.db.SQL().QueryRowContext(ctx, `SELECT lease_owner FROM orders WHERE id = $1`, o.ID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		t.Fatalf("lease_owner = %q after the final transition, want none", owner)
	}
	if got := f.order(o.ID); got.Status != domain.OrderCompleted || got.Version != o.Version+1 {
		t.Fatalf("order read back: status %v version %d", got.Status, got.Version)
	}
}

func testClaimRelease(t *testing.T, f *fixture) {
	ctx := t.Context()
	o := f.placed(alice, "k")
	const a, b, c = "runner-a", "runner-b", "runner-c"
	leases := map[string]domain.Lease{} // each owner's last lease
	claim := func(owner string, now, until time.Time) func() (bool, error) {
		return func() (bool, error) {
			lease, ok, err := f.s.Claim(ctx, o.ID, owner, now, until)
			if ok {
				leases[owner] = lease
			}
			return ok, err
		}
	}
	release := func(owner string) func() (bool, error) {
		return func() (bool, error) { return true, f.s.Release(ctx, o.ID, leases[owner]) }
	}
	// One order's lease, step by step: each row depends on the ones before.
	for i, step := range []struct {
		name string
		do   func() (bool, error)
		want bool
	}{
		{"a claims the free order", claim(a, t0, at(15*time.Second)), true},
		{"b is refused while a's lease is live", claim(b, at(time.Second), at(16*time.Second)), false},
		{"b is refused at the instant a's lease ends", claim(b, at(15*time.Second), at(30*time.Second)), false},
		{"a renews its own lease", claim(a, at(10*time.Second), at(25*time.Second)), true},
		{"b is refused within the renewed lease", claim(b, at(20*time.Second), at(35*time.Second)), false},
		{"b takes over a microsecond after the lease expired", claim(b, at(25*time.Second+time.Microsecond), at(40*time.Second)), true},
		{"a cannot renew a lease b took over", claim(a, at(26*time.Second), at(41*time.Second)), false},
		{"a releasing b's lease", release(a), true},
		{"c is still refused: a's release did nothing", claim(c, at(27*time.Second), at(42*time.Second)), false},
		{"b releases", release(b), true},
		{"c claims at once: the lease is free", claim(c, at(27*time.Second), at(42*time.Second)), true},
		{"b releasing a lease it no longer holds", release(b), true},
		{"b is refused: c's lease survived", claim(b, at(28*time.Second), at(43*time.Second)), false},
	} {
		ok, err := step.do()
		if err != nil || ok != step.want {
			t.Fatalf("step %d, %s: %v, %v; want %v", i+1, step.name, ok, err, step.want)
		}
	}
	if got := f.order(o.ID); got.Version != o.Version || got.Status != o.Status {
		t.Fatalf("leases changed the order: version %d status %d", got.Version, got.Status)
	}
}

func testFencedUpdates(t *testing.T, f *fixture) {
	ctx := t.Context()
	o := f.placed(alice, "k")
	claim := func(owner string, now time.Time) domain.Lease {
		t.Helper()
		lease, ok, err := f.s.Claim(ctx, o.ID, owner, now, now.Add(15*time.Second))
		if err != nil || !ok {
			t.Fatalf("Claim(%s at %v): %v, %v", owner, now.Sub(t0), ok, err)
		}
		return lease
	}
	update := func(lease domain.Lease, attempts int) error {
		_, err := transition(f.s, ctx, o.ID, lease, func(o *domain.Order) error {
			o.Steps[0].Attempts = attempts
			return nil
		})
		return err
	}
	a1 := claim("runner-a", t0)
	if err := update(a1, 1); err != nil {
		t.Fatalf("a's update under its lease: %v", err)
	}
	if renewed := claim("runner-a", at(5*time.Second)); renewed != a1 {
		t.Fatalf("a's renewal changed its lease: %+v, want %+v", renewed, a1)
	}
	// a pauses past its lease; b takes the order over.
	b := claim("runner-b", at(time.Minute))
	if b.Epoch == a1.Epoch {
		t.Fatalf("b's takeover kept epoch %d", b.Epoch)
	}
	if err := update(a1, 99); !errors.Is(err, domain.ErrLeaseLost) {
		t.Fatalf("a's update after b's takeover: %v, want ErrLeaseLost", err)
	}
	if err := update(b, 2); err != nil {
		t.Fatalf("b's update under its lease: %v", err)
	}
	// b pauses in turn; a claims the order back under a new epoch, so what
	// a's first Drive still has in flight is refused although the owner
	// matches.
	a2 := claim("runner-a", at(2*time.Minute))
	if a2.Epoch == a1.Epoch || a2.Epoch == b.Epoch {
		t.Fatalf("a's second claim has epoch %d, already used", a2.Epoch)
	}
	for name, stale := range map[string]domain.Lease{"a's first lease": a1, "b's lease": b} {
		if err := update(stale, 98); !errors.Is(err, domain.ErrLeaseLost) {
			t.Fatalf("update with %s: %v, want ErrLeaseLost", name, err)
		}
		if err := f.s.Release(ctx, o.ID, stale); err != nil {
			t.Fatal(err)
		}
	}
	if err := update(a2, 3); err != nil {
		t.Fatalf("a's update under its second lease (the stale releases did nothing): %v", err)
	}
	if got := f.order(o.ID); got.Steps[0].Attempts != 3 || got.Version != o.Version+3 {
		t.Fatalf("order after the fenced writes: attempts %d version %d, want 3 and %d", got.Steps[0].Attempts, got.Version, o.Version+3)
	}
}

func testClaimFinal(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		status domain.OrderStatus
		want   bool
	}{
		{domain.OrderPending, true},
		{domain.OrderInProgress, true},
		{domain.OrderCompensating, true},
		{domain.OrderCompleted, false},
		{domain.OrderFailed, false},
		{domain.OrderNeedsOperator, false},
	} {
		t.Run(fmt.Sprint("status ", tc.status), func(t *testing.T) {
			f := f.with(t)
			o := f.placed(alice, ids.New("k"))
			if tc.status != domain.OrderPending {
				f.setStatus(o.ID, tc.status)
			}
			if got := f.claim(o.ID, "runner", t0, at(15*time.Second)); got != tc.want {
				t.Fatalf("Claim of a %d order = %v, want %v", tc.status, got, tc.want)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		f := f.with(t)
		if f.claim(ids.New("ord"), "runner", t0, at(15*time.Second)) {
			t.Fatal("Claim of an unknown order succeeded")
		}
		if err := f.s.Release(t.Context(), ids.New("ord"), domain.Lease{Owner: "runner", Epoch: 1}); err != nil {
			t.Fatalf("Release of an unknown order: %v", err)
		}
	})
}

func testUnfinished(t *testing.T, f *fixture) {
	ctx := t.Context()
	pending := f.placed(alice, "pending")
	leased := f.placed(alice, "leased") // in progress, leased until t0+15s
	f.setStatus(leased.ID, domain.OrderInProgress)
	short := f.placed(bob, "short") // compensating, leased until t0+5s
	f.setStatus(short.ID, domain.OrderCompensating)
	completed := f.placed(alice, "completed")
	f.setStatus(completed.ID, domain.OrderCompleted)
	failed := f.placed(alice, "failed")
	f.setStatus(failed.ID, domain.OrderFailed)
	stuck := f.placed(alice, "stuck")
	f.setStatus(stuck.ID, domain.OrderNeedsOperator)
	released := f.placed(alice, "released") // claimed, then given up
	if !f.claim(leased.ID, "runner-1", t0, at(15*time.Second)) ||
		!f.claim(short.ID, "runner-2", t0, at(5*time.Second)) {
		t.Fatal("a claim of a free order was refused")
	}
	lease, ok, err := f.s.Claim(ctx, released.ID, "runner-3", t0, at(15*time.Second))
	if err != nil || !ok {
		t.Fatalf("a claim of a free order was refused: %v", err)
	}
	if err := f.s.Release(ctx, released.ID, lease); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		now   time.Time
		limit int
		want  []string
	}{
		{"live leases are skipped", at(time.Second), 100, []string{pending.ID, released.ID}},
		{"a lease is live through its last instant", at(5 * time.Second), 100, []string{pending.ID, released.ID}},
		{"an expired lease is due", at(5*time.Second + time.Microsecond), 100, []string{pending.ID, short.ID, released.ID}},
		{"oldest first, at most limit", at(5*time.Second + time.Microsecond), 2, []string{pending.ID, short.ID}},
		{"every lease expired", at(16 * time.Second), 100, []string{pending.ID, leased.ID, short.ID, released.ID}},
		{"limit 1", at(16 * time.Second), 1, []string{pending.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.s.Unfinished(ctx, tc.now, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Unfinished(%v, %d) = %v, want %v (completed %s, failed %s, needing an operator %s never)",
					tc.now.Sub(t0), tc.limit, got, tc.want, completed.ID, failed.ID, stuck.ID)
			}
		})
	}
}

// concurrently runs fn(i) for i in [0, n) at once, as far as a start
// barrier can arrange, and waits for all of them.
func concurrently(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

const racers = 20

func testConcurrentClaims(t *testing.T, f *fixture) {
	o := f.placed(alice, "k")
	won := make([]bool, racers)
	concurrently(racers, func(i int) {
		_, ok, err := f.s.Claim(context.Background(), o.ID, fmt.Sprint("runner-", i), t0, at(15*time.Second))
		if err != nil {
			t.Errorf("claim %d: %v", i, err)
		}
		won[i] = ok
	})
	winner := slices.Index(won, true)
	if n := len(slices.DeleteFunc(slices.Clone(won), func(w bool) bool { return !w })); n != 1 {
		t.Fatalf("%d claims won, want exactly 1", n)
	}
	// The winner holds the lease: it renews, and the others stay out.
	if !f.claim(o.ID, fmt.Sprint("runner-", winner), at(time.Second), at(16*time.Second)) {
		t.Fatal("the winner could not renew its lease")
	}
	if f.claim(o.ID, fmt.Sprint("runner-", (winner+1)%racers), at(2*time.Second), at(17*time.Second)) {
		t.Fatal("a loser took the winner's live lease")
	}
}

func testConcurrentSameKey(t *testing.T, f *fixture) {
	co := f.checkout(alice, "")
	steps := freshSteps()
	type result struct {
		id      string
		created bool
		err     error
	}
	results := make([]result, racers)
	concurrently(racers, func(i int) {
		// Retries of one request: same key, checkout and tokens; the app
		// draws a new order id for each.
		o, created, err := f.s.PlaceOrder(context.Background(), newOrder(co, "k", slices.Clone(steps)), t0)
		results[i] = result{o.ID, created, err}
	})
	stored := f.userOrders(alice)
	if len(stored) != 1 {
		t.Fatalf("%d orders stored for one key, want exactly 1: %v", len(stored), stored)
	}
	f.wantCheckout(co.ID, domain.CheckoutPlaced, stored[0])
	created := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("retry %d: %v; a retry with a used key must be answered with the stored order", i, r.err)
			continue
		}
		if r.id != stored[0] {
			t.Errorf("retry %d returned order %s, want the stored %s", i, r.id, stored[0])
		}
		if r.created {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d retries report created, want exactly 1", created)
	}
}

func testConcurrentSameCheckout(t *testing.T, f *fixture) {
	co := f.checkout(alice, "")
	orders := make([]domain.Order, racers)
	errs := make([]error, racers)
	for i := range orders {
		orders[i] = newOrder(co, fmt.Sprint("key-", i), freshSteps())
	}
	concurrently(racers, func(i int) {
		_, _, errs[i] = f.s.PlaceOrder(context.Background(), orders[i], t0)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("orders %d and %d were both placed for one checkout", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, domain.ErrCheckoutClosed):
			t.Fatalf("place %d: %v, want ErrCheckoutClosed", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no order was placed")
	}
	if got := f.userOrders(alice); !slices.Equal(got, []string{orders[winner].ID}) {
		t.Fatalf("alice's orders = %v, want only the winner %s", got, orders[winner].ID)
	}
	f.wantCheckout(co.ID, domain.CheckoutPlaced, orders[winner].ID)
	for i, o := range orders {
		if i != winner {
			f.wantUnconsumed(o.Steps...)
		}
	}
}

func testConcurrentSharedJTI(t *testing.T, f *fixture) {
	shared := freshSteps()[2] // one payment token, presented with many orders
	orders := make([]domain.Order, racers)
	errs := make([]error, racers)
	for i := range orders {
		orders[i] = newOrder(f.checkout(alice, ""), fmt.Sprint("key-", i), freshSteps())
		orders[i].Steps[2].JTI = shared.JTI
	}
	concurrently(racers, func(i int) {
		_, _, errs[i] = f.s.PlaceOrder(context.Background(), orders[i], t0)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("orders %d and %d both consumed one jti", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, replay.ErrReplayed):
			t.Fatalf("place %d: %v, want replay.ErrReplayed", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no order consumed the jti")
	}
	if got := f.userOrders(alice); !slices.Equal(got, []string{orders[winner].ID}) {
		t.Fatalf("alice's orders = %v, want only the winner %s", got, orders[winner].ID)
	}
	for i, o := range orders {
		if i == winner {
			f.wantCheckout(o.CheckoutID, domain.CheckoutPlaced, o.ID)
			continue
		}
		f.wantCheckout(o.CheckoutID, domain.CheckoutOpen, "")
		f.wantUnconsumed(o.Steps[0], o.Steps[1])
	}
}

func testConcurrentCheckouts(t *testing.T, f *fixture) {
	got := make([]string, racers)
	created := make([]bool, racers)
	concurrently(racers, func(i int) {
		co, c, err := f.s.CreateCheckout(context.Background(), domain.Checkout{ID: ids.New("op"), UserID: alice,
			Lines: cart(), Total: eur(4900), Status: domain.CheckoutOpen, IdempotencyKey: "k", CreatedAt: t0,
			ExpiresAt: at(30 * time.Minute)}, domain.IssuedToken{})
		if err != nil {
			t.Errorf("checkout %d: %v", i, err)
		}
		got[i], created[i] = co.ID, c
	})
	for i, id := range got {
		if id != got[0] {
			t.Fatalf("checkout %d returned %s, checkout 0 %s", i, id, got[0])
		}
	}
	if n := len(slices.DeleteFunc(created, func(c bool) bool { return !c })); n != 1 {
		t.Fatalf("%d checkouts report created, want exactly 1", n)
	}
	if _, err := f.s.Checkout(t.Context(), got[0]); err != nil {
		t.Fatalf("the one checkout is not stored: %v", err)
	}
}

func testConcurrentUpdates(t *testing.T, f *fixture) {
	o := f.placed(alice, "k")
	lease := f.lease(o.ID)
	// Every racer makes its transition from the same version: exactly one is
	// written, and the others are refused rather than written over it.
	won := make([]bool, racers)
	concurrently(racers, func(i int) {
		next := o
		next.Steps = slices.Clone(o.Steps)
		next.Steps[0].Attempts = 100 + i
		_, err := f.s.Transition(context.Background(), lease, o, next, false)
		switch {
		case err == nil:
			won[i] = true
		case !errors.Is(err, domain.ErrLeaseLost):
			t.Errorf("transition %d: %v", i, err)
		}
	})
	winner := slices.Index(won, true)
	if n := len(slices.DeleteFunc(slices.Clone(won), func(w bool) bool { return !w })); n != 1 {
		t.Fatalf("%d of %d transitions from one version were written, want exactly 1", n, racers)
	}
	if got := f.order(o.ID); got.Version != o.Version+1 || got.Steps[0].Attempts != 100+winner {
		t.Fatalf("after the race: version %d, attempts %d; want version %d, the winner's attempts %d",
			got.Version, got.Steps[0].Attempts, o.Version+1, 100+winner)
	}
}

// testUnfinishedIndex reads the definition of the partial index behind
// Unfinished: it must leave out every final status, NEEDS_OPERATOR
// included (migration 0003 recreated it).
func testUnfinishedIndex(t *testing.T, f *fixture) {
	q := `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'orders_unfinished'`
	if f.db.Dialect() == sqldb.Postgres {
		q = `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'orders_unfinished'`
	}
	var def string
	if err := f.db.SQL().QueryRowContext(t.Context(), q).Scan(&def); err != nil {
		t.Fatalf("orders_unfinished: %v", err)
	}
	var want []string
	for _, s := range domain.FinalStatuses {
		want = append(want, fmt.Sprint(int(s)))
	}
	compact := strings.NewReplacer(" ", "", "'", "", "::bigint", "", "(", "", ")", "", "ARRAY[", "", "]", "").Replace(def)
	if !strings.Contains(compact, "statusNOTIN"+strings.Join(want, ",")) && !strings.Contains(compact, "status<>ALL"+strings.Join(want, ",")) {
		t.Fatalf("orders_unfinished is %q; want it to leave out the final statuses %v", def, want)
	}
}

// needsOperator stores an order of user under key as the saga leaves one
// whose compensation was refused for good: points refused, the other
// steps compensated.
func (f *fixture) needsOperator(user, key string) domain.Order {
	f.t.Helper()
	return f.update(f.placed(user, key).ID, markNeedsOperator)
}

// markNeedsOperator makes o what the saga leaves when points refused its
// compensation for good.
func markNeedsOperator(o *domain.Order) {
	for i := range o.Steps {
		o.Steps[i].State, o.Steps[i].Attempts = domain.StepCompensated, 1
		if o.Steps[i].Capability == "points:spend" {
			o.Steps[i].State, o.Steps[i].LastError = domain.StepCompensationRefused, "already_exists: exercised for another order"
		}
	}
	o.Status = domain.OrderNeedsOperator
	o.FailureReason = domain.NeedsOperatorReason("payments:capture refused: card declined", o.Refused())
	o.UpdatedAt = at(time.Minute)
}

func testNeedingOperator(t *testing.T, f *fixture) {
	op := f.s.Operator()
	got, err := op.NeedingOperator(t.Context(), 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("NeedingOperator on a store without one = %v, %v", got, err)
	}
	first := f.needsOperator(alice, "first")
	for _, s := range []domain.OrderStatus{domain.OrderPending, domain.OrderCompensating, domain.OrderFailed, domain.OrderCompleted} {
		o := f.placed(alice, ids.New("other"))
		if s != domain.OrderPending {
			f.setStatus(o.ID, s)
		}
	}
	second := f.needsOperator(bob, "second")
	for _, tc := range []struct {
		name  string
		limit int
		want  []domain.Order
	}{
		{"oldest first, steps included", 10, []domain.Order{first, second}},
		{"at most limit", 1, []domain.Order{first}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := op.NeedingOperator(t.Context(), tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("NeedingOperator = %v, want %v", orderIDs(got), orderIDs(tc.want))
			}
			for i := range got {
				if d := orderDiff(got[i], tc.want[i]); d != "" {
					t.Fatalf("order %d:%s", i, d)
				}
			}
		})
	}
	// A store that was never migrated refuses, and creates nothing.
	t.Run("unmigrated database", func(t *testing.T) {
		bare := sqldbtest.SQLite(t)
		if _, err := adapters.NewOperator(bare).NeedingOperator(t.Context(), 10); err == nil {
			t.Fatal("NeedingOperator on an empty database succeeded")
		}
	})
}

func testOperatorUpdate(t *testing.T, f *fixture) {
	ctx := t.Context()
	// The replica that ended the order still holds its lease (it paused
	// before releasing it).
	placed := f.placed(alice, "k")
	held := f.lease(placed.ID)
	o, err := transition(f.s, ctx, placed.ID, held, func(o *domain.Order) error { markNeedsOperator(o); return nil })
	if err != nil {
		t.Fatal(err)
	}
	written := f.recordStepWrites()
	points := slices.IndexFunc(o.Steps, func(s domain.Step) bool { return s.Capability == "points:spend" })
	want := o
	want.Steps = slices.Clone(o.Steps)
	want.Steps[points].State = domain.StepCompensating
	want.Status, want.FailureReason = domain.OrderCompensating, "payments:capture refused: card declined"
	want.Version, want.UpdatedAt = o.Version+1, at(time.Hour)
	got, err := f.s.Operator().OperatorUpdate(ctx, o.ID, at(time.Hour), func(in *domain.Order) error {
		if d := orderDiff(*in, o); d != "" {
			t.Errorf("fn was handed%s", d)
		}
		_, err := in.RetryRefused()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := orderDiff(got, want); d != "" {
		t.Fatalf("OperatorUpdate returned%s", d)
	}
	if d := orderDiff(f.order(o.ID), want); d != "" {
		t.Fatalf("Order read back%s", d)
	}
	if w := written(t); !slices.Equal(w, []string{"points:spend"}) {
		t.Fatalf("steps written: %v, want only points:spend", w)
	}
	// The old holder is fenced off; the lease is free for anyone, at once.
	if _, err := transition(f.s, ctx, o.ID, held, func(o *domain.Order) error { o.Status = domain.OrderFailed; return nil }); !errors.Is(err, domain.ErrLeaseLost) {
		t.Fatalf("the old holder's update = %v, want ErrLeaseLost", err)
	}
	if ids, err := f.s.Unfinished(ctx, t0, 10); err != nil || !slices.Equal(ids, []string{o.ID}) {
		t.Fatalf("Unfinished at once = %v, %v; want the order", ids, err)
	}
	if !f.claim(o.ID, "runner-b", t0, at(15*time.Second)) {
		t.Fatal("a replica cannot claim the order after the operator's update")
	}

	t.Run("fn error writes nothing", func(t *testing.T) {
		f := f.with(t)
		stuck := f.needsOperator(bob, "k2")
		_ = written(t)
		errStop := errors.New("no")
		_, err := f.s.Operator().OperatorUpdate(ctx, stuck.ID, at(time.Hour), func(o *domain.Order) error {
			o.Status, o.Steps[0].State = domain.OrderFailed, domain.StepResolved
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("OperatorUpdate = %v, want fn's error", err)
		}
		if d := orderDiff(f.order(stuck.ID), stuck); d != "" {
			t.Fatalf("a failed operator update changed the order%s", d)
		}
		if w := written(t); len(w) != 0 {
			t.Fatalf("a failed operator update wrote steps %v", w)
		}
	})
	t.Run("unknown order", func(t *testing.T) {
		_, err := f.s.Operator().OperatorUpdate(ctx, ids.New("ord"), t0, func(*domain.Order) error {
			t.Error("fn called for an unknown order")
			return nil
		})
		if !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("OperatorUpdate(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func testOperatorRetryResolve(t *testing.T, f *fixture) {
	ctx := t.Context()
	op := f.s.Operator()
	o := f.needsOperator(alice, "k")
	resolve := func(id, note string) (domain.Order, error) {
		return op.OperatorUpdate(ctx, id, at(2*time.Hour), func(o *domain.Order) error { _, err := o.Resolve(note); return err })
	}
	if _, err := resolve(o.ID, "  "); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Fatalf("Resolve without a note = %v, want ErrInvalidArgument", err)
	}
	got, err := resolve(o.ID, "refunded the points by hand, ticket OPS-1")
	if err != nil {
		t.Fatal(err)
	}
	read := f.order(o.ID)
	if d := orderDiff(read, got); d != "" {
		t.Fatalf("Order read back after Resolve%s", d)
	}
	if read.Status != domain.OrderFailed || read.OperatorNote != "refunded the points by hand, ticket OPS-1" || read.FailureReason != o.FailureReason {
		t.Fatalf("after Resolve: %v, note %q, reason %q", read.Status, read.OperatorNote, read.FailureReason)
	}
	for _, st := range read.Steps {
		want := domain.StepCompensated
		if st.Capability == "points:spend" {
			want = domain.StepResolved
		}
		if st.State != want {
			t.Fatalf("after Resolve: step %s %v, want %v", st.Capability, st.State, want)
		}
	}
	if _, err := resolve(o.ID, "again"); !errors.Is(err, domain.ErrNotStuck) {
		t.Fatalf("Resolve of a FAILED order = %v, want ErrNotStuck", err)
	}
	if f.claim(o.ID, "runner", t0, at(time.Minute)) {
		t.Fatal("a resolved order was claimed")
	}
	if left, err := op.NeedingOperator(ctx, 10); err != nil || len(left) != 0 {
		t.Fatalf("NeedingOperator after Resolve = %v, %v", orderIDs(left), err)
	}
}
