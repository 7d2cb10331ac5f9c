package orderprocessing_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// TestPurge (issue 15, item 8) runs the service's purge, with the default
// configuration, after a completed checkout and an abandoned one: nothing
// goes inside the retentions; a day after the order completed its sealed
// tokens go, its consumed jtis are pruned (their tokens expired), the
// abandoned checkout goes after the retention, and the order stays, steps
// and all, in the user's history.
func TestPurge(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		w := newWorld(t)
		in := w.start(db)
		co := w.checkout(in, "usr_alice")
		o, err := w.place(in, "usr_alice", co.GetId(), w.tokens3("usr_alice", co.GetId()), "key-1")
		if err != nil {
			t.Fatal(err)
		}
		if end := final(w.await(in, "usr_alice", o.GetId())); end.GetStatus() != completed {
			t.Fatalf("order ended %v", end.GetStatus())
		}
		abandoned := w.checkout(in, "usr_alice")
		count := func(q string) int {
			var n int
			if err := db.SQL().QueryRowContext(t.Context(), q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		const retention = 30 * 24 * time.Hour
		now := time.Now()

		rows, err := in.svc.Purge(t.Context(), now, retention)
		if err != nil || rows["consumed_jtis"] != 0 || rows["steps.sealed_token"] != 0 || rows["checkouts"] != 0 || rows["orders"] != 0 {
			t.Fatalf("Purge now = %v, %v; want nothing purged", rows, err)
		}
		rows, err = in.svc.Purge(t.Context(), now.Add(25*time.Hour), retention)
		if err != nil || rows["consumed_jtis"] != 3 || rows["steps.sealed_token"] != 3 || rows["checkouts"] != 0 || rows["orders"] != 0 {
			t.Fatalf("Purge a day later = %v, %v; want 3 jtis pruned and 3 sealed tokens dropped", rows, err)
		}
		if n := count(`SELECT COUNT(*) FROM steps WHERE sealed_token <> ''`); n != 0 {
			t.Fatalf("%d sealed tokens left", n)
		}
		rows, err = in.svc.Purge(t.Context(), now.Add(retention+2*time.Hour), retention)
		if err != nil || rows["checkouts"] != 1 || rows["orders"] != 0 {
			t.Fatalf("Purge past the retention = %v, %v; want the abandoned checkout only", rows, err)
		}
		if n := count(`SELECT COUNT(*) FROM checkouts WHERE id = '` + abandoned.GetId() + `'`); n != 0 {
			t.Fatal("the abandoned checkout is still there")
		}
		got, err := in.client.GetOrder(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.GetOrderRequest{OrderId: o.GetId()}))
		if err != nil || got.Msg.GetOrder().GetStatus() != completed || len(got.Msg.GetOrder().GetSteps()) != 3 {
			t.Fatalf("the order after the purges: %v, %v; want it kept, COMPLETED, with its 3 steps", got, err)
		}
		if n := count(`SELECT COUNT(*) FROM checkouts WHERE id = '` + co.GetId() + `'`); n != 1 {
			t.Fatal("the placed checkout went; want it kept with its order")
		}
		// A checkout purged is unknown: cancelling it is refused as for one
		// that is not the caller's.
		_, err = in.client.CancelCheckout(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.CancelCheckoutRequest{CheckoutId: abandoned.GetId()}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("CancelCheckout of a purged checkout: %v, want permission_denied", err)
		}
	})
}
