package scaleout_test

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/scaleout"
)

// TestConcurrencyScaledOut runs, on one scaled-out cluster: confirmation
// tokens still accepted while their issuer is unreachable after a key
// rotation; rounds of the same tokens placed concurrently through both
// replicas; and 1,000 concurrent point spends, worth more than the balance,
// across both replicas.
func TestConcurrencyScaledOut(t *testing.T) {
	pg := sqldbtest.PostgresURL(t)
	c := startCluster(t, build(t), pg)
	ctx := testContext(t)
	if err := embedded.Seed(ctx, c.gateway.url, filepath.Join(c.data, "seeded")); err != nil {
		t.Fatal(err)
	}
	shopper, admin := logins(t, c.gateway.url)
	l := pgLedgers(t, c)
	coupon := 0
	freshCoupon := func() string {
		coupon++
		code := fmt.Sprintf("ROT-%d", coupon)
		if err := admin.GrantCoupon(ctx, shopper.UserID, code, 250); err != nil {
			t.Fatal(err)
		}
		return code
	}

	t.Run("issuer unreachable after a key rotation", func(t *testing.T) {
		// Both replicas verify a coupon token first, so each has cached
		// coupons' JWKS: the current key and the next one, published
		// ahead of its use.
		for i := 0; placed(t, c.replicas[0])["ok"] == 0 || placed(t, c.replicas[1])["ok"] == 0; i++ {
			if i == 10 {
				t.Fatal("10 orders placed and still a replica without one")
			}
			if o, err := shopper.Checkout(ctx, freshCoupon(), 0, scaleout.CardOK); err != nil || o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
				t.Fatalf("warm-up checkout: %v, %v", o.GetStatus(), err)
			}
		}
		var orders []*planned
		prepare := func() string {
			p, err := shopper.Prepare(ctx, freshCoupon(), 0, scaleout.CardOK)
			if err != nil {
				t.Fatal(err)
			}
			orders = append(orders, &planned{prep: p, key: "rot-" + p.CheckoutID, want: orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED})
			return kidOf(t, p.Tokens[0])
		}
		oldKID := prepare()
		prepare()
		// Rotate coupons' ring as `tokenrelay keys rotate` does, and restart
		// it so that it signs with the promoted key.
		signal(t, c.coupons, syscall.SIGTERM)
		<-c.coupons.done
		ring, err := keys.OpenRing(filepath.Join(c.data, "coupons", "keys"))
		if err != nil {
			t.Fatal(err)
		}
		if err := ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		c.restart(c.coupons)
		newKID := prepare()
		prepare()
		if newKID == oldKID {
			t.Fatalf("coupons still signs with %s after the rotation", oldKID)
		}
		// The issuer goes away: its JWKS refuses connections. Tokens
		// signed by the retired key and by the promoted one are still
		// verified, from the cache, by whichever replica gets them.
		c.kill(c.coupons)
		for _, p := range orders {
			if p.id, p.err = shopper.Place(ctx, p.prep, p.key); p.err != nil {
				t.Fatalf("place while coupons is down (token kid %s): %v", kidOf(t, p.prep.Tokens[0]), p.err)
			}
		}
		// Their sagas wait for coupons' Exercise (retried, or compensated
		// once it is back): once one is calling it, bring it back and check
		// the ledgers.
		done := make(chan struct{})
		close(done)
		waitCalling(t, l, orders, "coupons", done)
		c.restart(c.coupons)
		outcomes := histogram{}
		settle(t, shopper, done, orders, outcomes)
		t.Logf("4 orders placed with coupons down after a rotation (kid %s -> %s): %v", short(oldKID), short(newKID), outcomes)
		checkInvariants(t, l)
	})

	t.Run("the same tokens placed concurrently through both replicas make one order", func(t *testing.T) {
		rounds := trials(t, 5, 50)
		before := [2]map[string]int{placed(t, c.replicas[0]), placed(t, c.replicas[1])}
		refusals := histogram{}
		for round := range rounds {
			p, err := shopper.Prepare(ctx, freshCoupon(), 10, scaleout.CardOK)
			if err != nil {
				t.Fatal(err)
			}
			const n = 8
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				orders []string
			)
			for i := range n {
				wg.Go(func() {
					id, err := shopper.Place(ctx, p, fmt.Sprintf("race-%d-%d", round, i))
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						orders = append(orders, id)
					} else {
						refusals[connect.CodeOf(err).String()]++
					}
				})
			}
			wg.Wait()
			if len(orders) != 1 {
				t.Fatalf("round %d: %d orders %v, want exactly one", round+1, len(orders), orders)
			}
			wait(t, shopper, orders[0], orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED)
		}
		if refusals["already_exists"]+refusals["failed_precondition"] != rounds*7 {
			t.Fatalf("refusals %v, want %d already_exists or failed_precondition", refusals, rounds*7)
		}
		for i, r := range c.replicas {
			total := 0
			for code, v := range placed(t, r) {
				total += v - before[i][code]
			}
			if total == 0 {
				t.Errorf("replica %d got none of the concurrent PlaceOrder calls", i+1)
			}
		}
		sum := checkInvariants(t, l)
		t.Logf("%d rounds of 8 concurrent placements: %d orders, refusals:%v; ledgers: %v", rounds, rounds, refusals, sum)
	})

	t.Run("1000 concurrent point spends across replicas", func(t *testing.T) {
		// The infuser costs 790 points and points pay for all of it: each
		// order is one points:spend step. The balance covers 400 of the
		// 1,000 confirmed spends (each confirmation checks only that the
		// balance covers it alone).
		const spends, price, covered = 1000, 790, 400
		bal, err := shopper.Balance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		initial := int64(covered*price + 123)
		if initial < bal {
			t.Fatalf("balance %d already above %d", bal, initial)
		}
		if bal, err = admin.GrantPoints(ctx, shopper.UserID, initial-bal, "spends"); err != nil || bal != initial {
			t.Fatalf("grant: balance %d, %v", bal, err)
		}
		began := time.Now()
		orders := make([]*planned, spends)
		work := func(workers int, do func(i int)) {
			next := make(chan int)
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for i := range next {
						do(i)
					}
				})
			}
			for i := range spends {
				next <- i
			}
			close(next)
			wg.Wait()
		}
		var failed sync.Map
		work(8, func(i int) {
			p, err := shopper.PrepareItems(ctx, []*orderprocessingv1.CartItem{{Sku: "INFUSER-STEEL", Quantity: 1}}, "", price, "")
			if err != nil {
				failed.Store(i, err)
				return
			}
			orders[i] = &planned{prep: p, key: "spend-" + p.CheckoutID}
		})
		failed.Range(func(k, v any) bool { t.Fatalf("confirm spend %v: %v", k, v); return false })
		confirmed := time.Since(began)
		before := [2]int{placed(t, c.replicas[0])["ok"], placed(t, c.replicas[1])["ok"]}
		// Place them all, 32 at a time, through the gateway.
		work(32, func(i int) { place(ctx, shopper, orders[i]) })
		placing := time.Since(began) - confirmed
		checkouts := map[string]bool{}
		for _, p := range orders {
			if p.err != nil {
				t.Fatalf("place spend: %v", p.err)
			}
			checkouts[p.prep.CheckoutID] = true
		}
		// Wait until every order is final, reading OrderProcessing's
		// schema (1,000 WatchOrder streams would only slow the system).
		var completed, failedN int
		reasons := histogram{}
		for {
			completed, failedN = 0, 0
			reasons = histogram{}
			err := query(ctx, l.op, `SELECT checkout_id, status, failure_reason FROM `+l.op.table("orders"), func(r *sql.Rows) error {
				var co, reason string
				var status int64
				if err := r.Scan(&co, &status, &reason); err != nil || !checkouts[co] {
					return err
				}
				switch status {
				case orderCompleted:
					completed++
				case orderFailed:
					failedN++
					reasons[reason]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if completed+failedN == spends {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d completed and %d failed of %d: %v", completed, failedN, spends, ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
		}
		final, err := shopper.Balance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		per := [2]int{placed(t, c.replicas[0])["ok"] - before[0], placed(t, c.replicas[1])["ok"] - before[1]}
		t.Logf("%d spends of %d points on a balance of %d: %d completed, %d failed; final balance %d; placed %d and %d per replica; confirmed in %v, placed in %v, all final after %v\nfailure reasons:%v",
			spends, price, initial, completed, failedN, final, per[0], per[1], confirmed.Round(time.Millisecond), placing.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), reasons)
		if final < 0 || final != initial-int64(completed)*price {
			t.Errorf("final balance %d, want %d - %d x %d = %d", final, initial, completed, price, initial-int64(completed)*price)
		}
		if completed > covered {
			t.Errorf("%d spends completed, the balance covers %d", completed, covered)
		}
		if per[0] == 0 || per[1] == 0 || per[0]+per[1] < spends {
			t.Errorf("placed %d and %d per replica, want %d spread over both", per[0], per[1], spends)
		}
		sum := checkInvariants(t, l)
		if got := sum.balances[shopper.UserID]; got != final {
			t.Errorf("balance in the ledger %d, GetBalance %d", got, final)
		}
	})
}

// kidOf returns the kid of a compact JWS header (the test's own token, not
// verified).
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.SplitN(raw, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.KID
}

func short(kid string) string { return kid[:min(8, len(kid))] + "..." }
