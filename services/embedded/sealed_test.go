package embedded_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// payWhole starts a checkout and has Payments confirm its whole total on
// the demo Visa card: the checkout id and the confirmation token.
func (s *shopper) payWhole(t *testing.T) (checkoutID, tok, authorizationID string) {
	t.Helper()
	started, err := s.orders.StartCheckout(t.Context(), connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "MUG-STONE", Quantity: 1}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	co := started.Msg.GetCheckout()
	pay, err := s.payments.ConfirmPayment(t.Context(), connect.NewRequest(&paymentsv1.ConfirmPaymentRequest{
		CheckoutToken: started.Msg.GetCheckoutToken(), PaymentMethodId: s.card(t, "4242"),
		Amount: &typev1.Money{AmountMinor: co.GetTotal().GetAmountMinor(), Currency: co.GetTotal().GetCurrency()},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return co.GetId(), pay.Msg.GetConfirmationToken(), pay.Msg.GetAuthorizationId()
}

// claimsOf decodes a token's claims as anyone holding it can: the client,
// OrderProcessing, a log.
func claimsOf(t *testing.T, tok string) (string, map[string]any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return string(raw), c
}

// place places a checkout with its one token and returns the final order.
func (s *shopper) place(t *testing.T, checkoutID, tok string) *orderprocessingv1.Order {
	t.Helper()
	placed, err := s.orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: checkoutID, ConfirmationTokens: []string{tok}, IdempotencyKey: "place-" + checkoutID,
	}))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := s.orders.WatchOrder(t.Context(), connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: placed.Msg.GetOrder().GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	var last *orderprocessingv1.Order
	for stream.Receive() {
		last = stream.Msg().GetOrder()
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return last
}

// TestSealedConstraints: Payments seals its constraints by default. The
// client and OrderProcessing see only a JWE they cannot open, OrderProcessing
// still checks the envelope and settlement and places the order, and
// Payments opens the constraints at Exercise, across a rotation of its
// vault keys: a token sealed with version 1 before the rotation and one
// sealed with version 2 after it both complete.
func TestSealedConstraints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sys := start(t, dir)
	s := login(t, sys.URL())
	co1, tok1, auth1 := s.payWhole(t)
	stop(t, sys)

	ring, err := vault.LoadDir(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ring.Rotate(); err != nil || v != 2 {
		t.Fatalf("rotate: %d %v", v, err)
	}
	sys = start(t, dir)
	defer stop(t, sys)
	s = login(t, sys.URL())
	co2, tok2, auth2 := s.payWhole(t)

	payments, err := sealed.New(ring, "payments", "")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ tok, auth, kid string }{{tok1, auth1, "v1"}, {tok2, auth2, "v2"}} {
		// What the client and OrderProcessing read: the settlement, and
		// constraints that are one JWE naming the key version.
		text, c := claimsOf(t, tc.tok)
		if strings.Contains(text, tc.auth) || strings.Contains(text, "authorization_id") || strings.Contains(text, "amount_sha256") {
			t.Fatalf("token %d shows its constraints: %s", i+1, text)
		}
		if _, ok := c["settlement"]; !ok {
			t.Fatalf("token %d has no settlement in the clear", i+1)
		}
		cons, _ := c["constraints"].(map[string]any)
		v, _ := cons[sealed.Member].(string)
		constraints := map[string]string{sealed.Member: v}
		h, err := sealed.Describe(constraints)
		if err != nil || h.KID != tc.kid || h.Alg != sealed.Dir {
			t.Fatalf("token %d: sealed header %+v, %v; want kid %s", i+1, h, err, tc.kid)
		}
		// No other party derives Payments' key: not OrderProcessing, not
		// another domain, even from the same vault ring (the embedded
		// process shares one); not a ring without Payments' keys (as
		// OrderProcessing's own vault when scaled out).
		other, _ := vault.LoadDir(filepath.Join(t.TempDir(), "op-vault"))
		for name, sl := range map[string]*sealed.Sealer{
			"order-processing, same ring": must(sealed.New(ring, "order-processing", "")),
			"coupons, same ring":          must(sealed.New(ring, "coupons", "")),
			"payments, another ring":      must(sealed.New(other, "payments", "")),
		} {
			if _, err := sl.Open(constraints); !errors.Is(err, sealed.ErrSealed) {
				t.Errorf("token %d opened by %s: %v", i+1, name, err)
			}
		}
		// The issuer opens them.
		got, err := payments.Open(constraints)
		if err != nil || got["authorization_id"] != tc.auth || len(got["amount_sha256"]) != 64 {
			t.Fatalf("token %d: Payments opens %v, %v", i+1, got, err)
		}
	}

	// OrderProcessing places both, and Payments, which has version 2 now,
	// opens both at Exercise.
	for i, p := range []struct{ co, tok string }{{co1, tok1}, {co2, tok2}} {
		if o := s.place(t, p.co, p.tok); o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
			t.Fatalf("order %d: %v", i+1, o)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSealConstraintsPerDomain: sealing is per domain. With Coupons and
// Points opting in and Payments opting out, a whole checkout (coupon,
// points, card) completes, and each token carries its constraints as its
// domain is configured.
func TestSealConstraintsPerDomain(t *testing.T) {
	t.Parallel()
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger:          slog.New(authn.NewLogHandler(slog.DiscardHandler)),
		SealConstraints: map[string]bool{"coupons": true, "points": true, "payments": false},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	var mu sync.Mutex
	tokens := map[string]string{} // procedure -> confirmation token
	capture := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			res, err := next(ctx, req)
			if m, ok := res.(interface{ Any() any }); ok && err == nil {
				if c, ok := m.Any().(interface{ GetConfirmationToken() string }); ok {
					mu.Lock()
					tokens[req.Spec().Procedure] = c.GetConfirmationToken()
					mu.Unlock()
				}
			}
			return res, err
		}
	})
	s := login(t, sys.URL(), connect.WithInterceptors(capture))
	if o := s.checkout(t, "WELCOME5", 300, s.card(t, "4242")); o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order ended %v", o)
	}
	want := map[string]bool{ // procedure suffix -> sealed
		"/ConfirmCoupon": true, "/ConfirmPoints": true, "/ConfirmPayment": false,
	}
	for suffix, wantSealed := range want {
		var tok string
		for proc, tk := range tokens {
			if strings.HasSuffix(proc, suffix) {
				tok = tk
			}
		}
		if tok == "" {
			t.Fatalf("no token captured for %s (%d captured)", suffix, len(tokens))
		}
		_, c := claimsOf(t, tok)
		cons, _ := c["constraints"].(map[string]any)
		_, isSealed := cons[sealed.Member]
		if isSealed != wantSealed || len(cons) == 0 || (isSealed && len(cons) != 1) {
			t.Errorf("%s: constraints %v, want sealed %v", suffix, cons, wantSealed)
		}
	}
}
