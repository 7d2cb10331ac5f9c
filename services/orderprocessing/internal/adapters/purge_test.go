package adapters_test

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// finish ends order id in status at updated, as the saga leaves it.
func (f *fixture) finish(id string, status domain.OrderStatus, updated time.Time) {
	f.t.Helper()
	f.update(id, func(o *domain.Order) {
		for i := range o.Steps {
			o.Steps[i].State = domain.StepApplied
		}
		o.Status, o.UpdatedAt = status, updated
	})
}

// purgedEvents returns how many purged events the audit trail has of
// order id's tokens, each a step's (issuer, jti).
func (f *fixture) purgedEvents(id string) int {
	f.t.Helper()
	evs, err := f.s.Audit().ByOrder(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == audit.Purged {
			if !slices.ContainsFunc(f.order(id).Steps, func(st domain.Step) bool { return st.Issuer == e.Issuer && st.JTI == e.JTI }) {
				f.t.Errorf("purged event %+v names no step of order %s", e, id)
			}
			n++
		}
	}
	return n
}

// sealed returns the sealed tokens of order id's steps, "" for a dropped one.
func (f *fixture) sealed(id string) []string {
	f.t.Helper()
	var out []string
	for _, st := range f.order(id).Steps {
		out = append(out, st.SealedToken)
	}
	return out
}

func (f *fixture) wantSealed(id string, kept bool) {
	f.t.Helper()
	for _, tok := range f.sealed(id) {
		if (tok != "") != kept {
			f.t.Fatalf("order %s: sealed tokens %q; want kept = %v", id, f.sealed(id), kept)
		}
	}
}

// TestPurgeStore (issue 15, item 8) runs each purge of the store on SQLite
// and PostgreSQL: what is past its retention goes, what is inside it, or
// unfinished, or waiting for an operator, stays.
func TestPurgeStore(t *testing.T) {
	t.Parallel()
	t.Run("sealed tokens of finished orders", func(t *testing.T) {
		t.Parallel()
		sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
			f := &fixture{t: t, db: db, s: newStore(t, db)}
			completed, failed := f.placed(alice, "c"), f.placed(alice, "f")
			f.finish(completed.ID, domain.OrderCompleted, at(time.Hour))
			f.finish(failed.ID, domain.OrderFailed, at(time.Hour))
			recent := f.placed(alice, "r")
			f.finish(recent.ID, domain.OrderCompleted, at(3*time.Hour))
			stuck := f.needsOperator(alice, "n") // updated at t0 + 1 min
			running := f.placed(alice, "p")

			n, err := f.s.DropSealedTokens(t.Context(), at(2*time.Hour))
			if err != nil || n != 6 {
				t.Fatalf("DropSealedTokens = %d, %v; want the 6 steps of the two old finished orders", n, err)
			}
			f.wantSealed(completed.ID, false)
			f.wantSealed(failed.ID, false)
			f.wantSealed(recent.ID, true)  // inside the retention
			f.wantSealed(stuck.ID, true)   // an operator may retry it: the saga needs its tokens
			f.wantSealed(running.ID, true) // unfinished
			if o := f.order(completed.ID); len(o.Steps) != 3 || o.Status != domain.OrderCompleted {
				t.Fatalf("the order lost more than its tokens: %+v", o)
			}
			// Each token dropped is recorded as purged, with its order.
			for id, want := range map[string]int{completed.ID: 3, failed.ID: 3, recent.ID: 0, stuck.ID: 0} {
				if got := f.purgedEvents(id); got != want {
					t.Errorf("order %s: %d purged events, want %d", id, got, want)
				}
			}
			if n, err := f.s.DropSealedTokens(t.Context(), at(2*time.Hour)); err != nil || n != 0 {
				t.Fatalf("second DropSealedTokens = %d, %v; want nothing to do", n, err)
			}
		})
	})
	t.Run("finished orders", func(t *testing.T) {
		t.Parallel()
		sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
			f := &fixture{t: t, db: db, s: newStore(t, db)}
			old := f.placed(alice, "o")
			f.finish(old.ID, domain.OrderFailed, at(time.Hour))
			recent := f.placed(alice, "r")
			f.finish(recent.ID, domain.OrderCompleted, at(3*time.Hour))
			stuck := f.needsOperator(alice, "n")
			running := f.placed(alice, "p")

			p, err := f.s.PurgeOrders(t.Context(), at(2*time.Hour))
			if err != nil || p != (adapters.OrdersPurged{Orders: 1, Steps: 3, Checkouts: 1}) {
				t.Fatalf("PurgeOrders = %+v, %v; want the old order, its 3 steps and its checkout", p, err)
			}
			f.wantNoOrder(old.ID)
			if _, err := f.s.Checkout(t.Context(), old.CheckoutID); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("the purged order's checkout: %v, want ErrNotFound", err)
			}
			for _, id := range []string{recent.ID, stuck.ID, running.ID} {
				f.order(id)
			}
			if got := f.userOrders(alice); len(got) != 3 {
				t.Fatalf("orders left %v, want 3", got)
			}
		})
	})
	t.Run("checkouts no order was placed for", func(t *testing.T) {
		t.Parallel()
		sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
			f := &fixture{t: t, db: db, s: newStore(t, db)}
			expired := f.checkout(bob, "") // expires at t0 + 30 min
			cancelled := f.checkout(bob, "")
			if _, err := f.s.CancelCheckout(t.Context(), cancelled.ID, t0); err != nil {
				t.Fatal(err)
			}
			placed := f.placed(bob, "k")
			late := f.createCheckout(domain.Checkout{ID: ids.New("op"), UserID: bob, Lines: cart(), Total: eur(4900),
				Status: domain.CheckoutOpen, CreatedAt: at(time.Hour), ExpiresAt: at(2 * time.Hour)})

			if n, err := f.s.PurgeCheckouts(t.Context(), at(30*time.Minute)); err != nil || n != 0 {
				t.Fatalf("PurgeCheckouts at their expiry = %d, %v; want nothing", n, err)
			}
			n, err := f.s.PurgeCheckouts(t.Context(), at(time.Hour))
			if err != nil || n != 2 {
				t.Fatalf("PurgeCheckouts = %d, %v; want the expired and the cancelled one", n, err)
			}
			for _, id := range []string{expired.ID, cancelled.ID} {
				if _, err := f.s.Checkout(t.Context(), id); !errors.Is(err, domain.ErrNotFound) {
					t.Fatalf("Checkout(%s) after the purge: %v, want ErrNotFound", id, err)
				}
			}
			f.wantCheckout(placed.CheckoutID, domain.CheckoutPlaced, placed.ID)
			f.wantCheckout(late.ID, domain.CheckoutOpen, "")
		})
	})
	t.Run("consumed jtis", func(t *testing.T) {
		t.Parallel()
		sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
			f := &fixture{t: t, db: db, s: newStore(t, db)}
			// Its tokens expire at t0 + 2 min; their records are kept, rounded
			// up to the second, until the guard's leeway has passed too.
			o := f.placed(alice, "j")
			count := func() int {
				var n int
				if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM consumed_jtis`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n, err := f.s.PruneConsumed(t.Context(), at(2*time.Minute)); err != nil || n != 0 || count() != 3 {
				t.Fatalf("PruneConsumed within the leeway = %d, %v (%d left); want nothing", n, err, count())
			}
			n, err := f.s.PruneConsumed(t.Context(), at(2*time.Minute+replay.DefaultLeeway+2*time.Second))
			if err != nil || n != 3 || count() != 0 {
				t.Fatalf("PruneConsumed past the leeway = %d, %v (%d left); want the order's 3", n, err, count())
			}
			f.order(o.ID) // the order is not touched
		})
	})
}

// TestConcurrentPurgesStore runs every purge from two goroutines at once,
// as two replicas do, over more than one batch: each row is purged once,
// counted once, and no purge fails.
func TestConcurrentPurgesStore(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		f := &fixture{t: t, db: db, s: newStore(t, db)}
		const orders = adapters.PurgeBatch/3 + 40 // steps: more than a batch
		seed(t, db, orders)
		before := at(2 * time.Hour)
		type result struct {
			sealed, checkouts, jtis int64
			orders                  adapters.OrdersPurged
		}
		var wg sync.WaitGroup
		got := make([]result, 2)
		errs := make([]error, 2)
		for i := range got {
			wg.Go(func() {
				var e1, e2, e3, e4 error
				got[i].sealed, e1 = f.s.DropSealedTokens(t.Context(), before)
				got[i].checkouts, e2 = f.s.PurgeCheckouts(t.Context(), before)
				got[i].jtis, e3 = f.s.PruneConsumed(t.Context(), before)
				got[i].orders, e4 = f.s.PurgeOrders(t.Context(), before)
				errs[i] = errors.Join(e1, e2, e3, e4)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// A purge that came back short because the other held rows
		// stopped; the next run takes what is left.
		var more result
		var err error
		if more.sealed, err = f.s.DropSealedTokens(t.Context(), before); err != nil {
			t.Fatal(err)
		}
		if more.checkouts, err = f.s.PurgeCheckouts(t.Context(), before); err != nil {
			t.Fatal(err)
		}
		if more.jtis, err = f.s.PruneConsumed(t.Context(), before); err != nil {
			t.Fatal(err)
		}
		if more.orders, err = f.s.PurgeOrders(t.Context(), before); err != nil {
			t.Fatal(err)
		}
		sum := func(f func(result) int64) int64 { return f(got[0]) + f(got[1]) + f(more) }
		if s := sum(func(r result) int64 { return r.sealed }); s > 3*orders || s == 0 {
			// Sealed tokens and orders race: an order purged first takes
			// its steps with it, tokens and all.
			t.Errorf("sealed tokens dropped %d times, want between 1 and %d", s, 3*orders)
		}
		// Each token dropped recorded once, in one chain that verifies.
		var purged int64
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_events WHERE action = 'purged'`).Scan(&purged); err != nil ||
			purged != sum(func(r result) int64 { return r.sealed }) {
			t.Errorf("%d purged events (%v), %d tokens dropped", purged, err, sum(func(r result) int64 { return r.sealed }))
		}
		if _, err := f.s.Audit().Verify(t.Context(), adapters.AuditService); err != nil {
			t.Error(err)
		}
		if s := sum(func(r result) int64 { return r.checkouts }); s != orders {
			t.Errorf("unplaced checkouts purged %d, want %d", s, orders)
		}
		if s := sum(func(r result) int64 { return r.jtis }); s != 3*orders {
			t.Errorf("consumed jtis pruned %d, want %d", s, 3*orders)
		}
		if s := sum(func(r result) int64 { return r.orders.Orders }); s != orders {
			t.Errorf("orders purged %d, want %d", s, orders)
		}
		if s := sum(func(r result) int64 { return r.orders.Steps }); s != 3*orders {
			t.Errorf("steps purged %d, want %d", s, 3*orders)
		}
		for _, table := range []string{"orders", "steps", "checkouts", "consumed_jtis"} {
			var n int
			if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %d rows left (%v), want 0", table, n, err)
			}
		}
	})
}

// seed stores n orders COMPLETED an hour after t0, each with 3 steps, its
// checkout and 3 consumed jtis expired at t0, and n checkouts cancelled,
// directly: the fixture's one order at a time would make the test slow.
func seed(t *testing.T, db *sqldb.DB, n int) {
	t.Helper()
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		for i := range n {
			id, co := fmt.Sprint("ord_", i), fmt.Sprint("op_", i)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO checkouts (id, user_id, lines, total_minor, currency, status, order_id, created_at, expires_at)
					VALUES ($1, 'u', '[]', 1, 'EUR', $2, $3, $4, $4)`, []any{co, domain.CheckoutPlaced, id, t0}},
				{`INSERT INTO checkouts (id, user_id, lines, total_minor, currency, status, created_at, expires_at)
					VALUES ($1, 'u', '[]', 1, 'EUR', $2, $3, $3)`, []any{"x" + co, domain.CheckoutCancelled, t0}},
				{`INSERT INTO orders (id, checkout_id, user_id, lines, total_minor, currency, status, idempotency_key, version,
					lease_until, created_at, updated_at) VALUES ($1, $2, 'u', '[]', 1, 'EUR', $3, $1, 1, $4, $4, $5)`,
					[]any{id, co, domain.OrderCompleted, t0, at(time.Hour)}},
			} {
				if _, err := tx.ExecContext(t.Context(), q.sql, q.args...); err != nil {
					return err
				}
			}
			for j, c := range []string{"a:x", "b:x", "c:x"} {
				jti := fmt.Sprint(id, "-", j)
				if _, err := tx.ExecContext(t.Context(), `INSERT INTO steps (order_id, capability, issuer, stage, state,
					settlement_minor, currency, jti, expires_at, sealed_token) VALUES ($1, $2, 'i', 1, $3, 1, 'EUR', $4, $5, 'v1.x')`,
					id, c, domain.StepApplied, jti, t0); err != nil {
					return err
				}
				if _, err := tx.ExecContext(t.Context(), `INSERT INTO consumed_jtis (iss, jti, expires_at) VALUES ('i', $1, $2)`,
					jti, t0.Unix()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDropSealedTokensFreesPages: on SQLite, dropping the tokens frees the
// pages they took for new rows (a plain UPDATE would leave every page
// allocated and mostly empty, and the file would grow by the tokens all
// the same).
func TestDropSealedTokensFreesPages(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	f := &fixture{t: t, db: db, s: newStore(t, db)}
	const orders = 300
	seed(t, db, orders)
	// A sealed confirmation token is about a kilobyte.
	if _, err := db.SQL().ExecContext(t.Context(), `UPDATE steps SET sealed_token = 'v1.' || substr(hex(zeroblob(600)), 1, 1100)`); err != nil {
		t.Fatal(err)
	}
	pages := func(q string) int {
		var n int
		if err := db.SQL().QueryRowContext(t.Context(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := pages(`PRAGMA page_count`)
	n, err := f.s.DropSealedTokens(t.Context(), at(2*time.Hour))
	if err != nil || n != 3*orders {
		t.Fatalf("DropSealedTokens = %d, %v; want %d", n, err, 3*orders)
	}
	if free := pages(`PRAGMA freelist_count`); free < before/3 {
		t.Fatalf("%d of %d pages free after dropping the tokens; want at least a third", free, before)
	}
	if n := pages(`SELECT COUNT(*) FROM steps WHERE sealed_token = ''`); n != 3*orders {
		t.Fatalf("%d steps emptied, want every one of the %d kept", n, 3*orders)
	}
}
