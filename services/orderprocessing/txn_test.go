package orderprocessing_test

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// txnOf returns the txn claim of a transaction token (read, not verified:
// the test minted it).
func txnOf(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Txn string `json:"txn"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Txn == "" {
		t.Fatalf("no txn: %v", err)
	}
	return c.Txn
}

// TestSagaContinuesTransactionAcrossTakeover (issue 18): the saga's calls
// continue the transaction of the request that placed the order. A replica
// crashes in the middle of the saga (at the payment capture, after coupons
// and points were exercised), another takes the order over; every
// Exercise the domains log, before and after the takeover, carries a
// transaction token, from the gateway's Txn-Token Service, with the
// PlaceOrder request's txn, its user, and the step's capability as the only
// scope; the saga's own lines on both replicas carry that txn too.
func TestSagaContinuesTransactionAcrossTakeover(t *testing.T) {
	t.Parallel()
	for store, open := range stores {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			opLogs := &syncBuffer{}
			w.logs = slog.NewJSONHandler(opLogs, nil)
			db := open(t)
			first := w.start(db)
			crashed := make(chan struct{})
			w.ledgers["payments"].setFault(func(kind string, call int) error {
				if kind == "exercise" && call == 1 {
					first.stop()
					close(crashed)
					return connect.NewError(connect.CodeUnavailable, errCrash)
				}
				return nil
			})
			co := w.checkout(first, "usr_alice")
			hdr := w.as("usr_alice")
			txn := txnOf(t, hdr.Get(authn.TxnHeader))
			res, err := first.client.PlaceOrder(t.Context(), header(hdr, &orderprocessingv1.PlaceOrderRequest{
				CheckoutId: co.GetId(), ConfirmationTokens: w.tokens3("usr_alice", co.GetId()), IdempotencyKey: "k",
			}))
			if err != nil {
				t.Fatal(err)
			}
			id := res.Msg.GetOrder().GetId()
			select {
			case <-crashed:
			case <-testContext(t).Done():
				t.Fatal("the saga never reached the payment capture")
			}
			<-first.done
			second := w.start(db)
			if end := final(w.await(second, "usr_alice", id)); end.GetStatus() != completed {
				t.Fatalf("order ended %v", end.GetStatus())
			}
			second.crash() // its saga has returned, its last line written

			exercises := w.domainLogs.lines(t, "exercise")
			byDomain := map[string]int{}
			for _, l := range exercises {
				domain, _ := l["domain"].(string)
				byDomain[domain]++
				if l["order"] != id || l["txn"] != txn || l["sub"] != "usr_alice" || l["scope"] != capabilities[domain] {
					t.Errorf("exercise line %v: want order %s, txn %s, sub usr_alice, scope %s", l, id, txn, capabilities[domain])
				}
			}
			// Coupons and points before the crash, the payment capture
			// on both sides of it.
			if byDomain["coupons"] != 1 || byDomain["points"] != 1 || byDomain["payments"] != 2 {
				t.Fatalf("exercise lines by domain: %v", byDomain)
			}
			for _, msg := range []string{"order placed", "order completed"} {
				lines := opLogs.lines(t, msg)
				if len(lines) != 1 || lines[0]["txn"] != txn || lines[0]["order"] != id {
					t.Errorf("%q lines %v, want one with txn %s", msg, lines, txn)
				}
			}
			if strings.Contains(w.domainLogs.String(), hdr.Get(authn.TxnHeader)) {
				t.Fatal("a domain logged a token")
			}
		})
	}
}
