package embedded_test

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

func start(t *testing.T, dir string) *embedded.System {
	t.Helper()
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// stop closes sys, which must have run without a failure.
func stop(t *testing.T, sys *embedded.System) {
	t.Helper()
	if err := sys.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// shopper is the demo shopper's view of the system, through the gateway.
type shopper struct {
	orders   orderprocessingv1connect.OrderProcessingServiceClient
	coupons  couponsv1connect.CouponsServiceClient
	points   pointsv1connect.PointsServiceClient
	payments paymentsv1connect.PaymentsServiceClient
	// placed are the confirmation tokens of the last order checkout placed.
	placed []string
}

func login(t *testing.T, url string, opts ...connect.ClientOption) *shopper {
	t.Helper()
	return loginWith(t, http.DefaultClient, url, opts...)
}

// loginWith is login with client.
func loginWith(t *testing.T, client *http.Client, url string, opts ...connect.ClientOption) *shopper {
	t.Helper()
	res, err := identityv1connect.NewIdentityServiceClient(client, url, opts...).Login(t.Context(),
		connect.NewRequest(&identityv1.LoginRequest{Username: "shopper", Password: identity.DemoShopperPassword}))
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, connect.WithInterceptors(authn.NewBearerInterceptor(res.Msg.GetSession().GetAccessToken())))
	return &shopper{
		orders:   orderprocessingv1connect.NewOrderProcessingServiceClient(client, url, opts...),
		coupons:  couponsv1connect.NewCouponsServiceClient(client, url, opts...),
		points:   pointsv1connect.NewPointsServiceClient(client, url, opts...),
		payments: paymentsv1connect.NewPaymentsServiceClient(client, url, opts...),
	}
}

func (s *shopper) balance(t *testing.T) int64 {
	t.Helper()
	res, err := s.points.GetBalance(t.Context(), connect.NewRequest(&pointsv1.GetBalanceRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetBalance()
}

func (s *shopper) card(t *testing.T, last4 string) string {
	t.Helper()
	res, err := s.payments.ListPaymentMethods(t.Context(), connect.NewRequest(&paymentsv1.ListPaymentMethodsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, pm := range res.Msg.GetPaymentMethods() {
		if pm.GetLast4() == last4 {
			return pm.GetId()
		}
	}
	t.Fatalf("no card ending %s", last4)
	return ""
}

// checkout runs the whole checkout of ARCHITECTURE.md with a coupon, points and
// a card, and returns the final order.
func (s *shopper) checkout(t *testing.T, coupon string, points int64, card string) *orderprocessingv1.Order {
	t.Helper()
	ctx := t.Context()
	started, err := s.orders.StartCheckout(ctx, connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "TEA-BLACK-250G", Quantity: 2}, {Sku: "MUG-STONE", Quantity: 1}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	co, cot := started.Msg.GetCheckout(), started.Msg.GetCheckoutToken()
	total := co.GetTotal().GetAmountMinor() // 2*18.90 + 24.00 = 61.80 EUR
	if total != 6180 {
		t.Fatalf("total = %d, want 6180", total)
	}
	var toks []string
	remaining := total
	if coupon != "" {
		c, err := s.coupons.ConfirmCoupon(ctx, connect.NewRequest(&couponsv1.ConfirmCouponRequest{CheckoutToken: cot, Code: coupon}))
		if err != nil {
			t.Fatal(err)
		}
		toks, remaining = append(toks, c.Msg.GetConfirmationToken()), remaining-c.Msg.GetDiscount().GetAmountMinor()
	}
	if points > 0 {
		p, err := s.points.ConfirmPoints(ctx, connect.NewRequest(&pointsv1.ConfirmPointsRequest{CheckoutToken: cot, Points: points}))
		if err != nil {
			t.Fatal(err)
		}
		toks, remaining = append(toks, p.Msg.GetConfirmationToken()), remaining-p.Msg.GetValue().GetAmountMinor()
	}
	pay, err := s.payments.ConfirmPayment(ctx, connect.NewRequest(&paymentsv1.ConfirmPaymentRequest{
		CheckoutToken: cot, PaymentMethodId: card, Amount: &typev1.Money{AmountMinor: remaining, Currency: "EUR"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	toks = append(toks, pay.Msg.GetConfirmationToken())
	placed, err := s.orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: co.GetId(), ConfirmationTokens: toks, IdempotencyKey: "place-" + co.GetId(),
	}))
	if err != nil {
		t.Fatal(err)
	}
	s.placed = toks
	// The stream ends when the order is final; a saga that never ends is
	// caught by the test binary's -timeout, not by a guess here.
	stream, err := s.orders.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: placed.Msg.GetOrder().GetId()}))
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
	// The same tokens again: refused, whatever the key.
	_, err = s.orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: co.GetId(), ConfirmationTokens: toks, IdempotencyKey: "again-" + co.GetId(),
	}))
	if code := connect.CodeOf(err); code != connect.CodeFailedPrecondition && code != connect.CodeAlreadyExists {
		t.Fatalf("replayed order: %v", err)
	}
	return last
}

func (s *shopper) couponState(t *testing.T, code string) couponsv1.CouponState {
	t.Helper()
	res, err := s.coupons.ListAvailableCoupons(t.Context(), connect.NewRequest(&couponsv1.ListAvailableCouponsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Msg.GetCoupons() {
		if c.GetCode() == code {
			return c.GetState()
		}
	}
	t.Fatalf("no coupon %s", code)
	return 0
}

// TestCheckout runs the checkout of ARCHITECTURE.md against the real services in
// one process, through the gateway, over Connect and gRPC: a completed
// order, then one whose capture fails and is compensated, then a restart
// that keeps everything.
func TestCheckout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sys := start(t, dir)
	for _, path := range []string{"/healthz", "/.well-known/openid-configuration", "/.well-known/jwks.json",
		"/.well-known/jwks/gateway.json", "/.well-known/jwks/order-processing.json", "/.well-known/jwks/coupons.json",
		"/.well-known/jwks/points.json", "/.well-known/jwks/payments.json"} {
		res, err := http.Get(sys.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, res.Status)
		}
	}
	s := login(t, sys.URL())
	if b := s.balance(t); b != 1000 {
		t.Fatalf("seeded balance = %d", b)
	}

	done := s.checkout(t, "WELCOME5", 300, s.card(t, embedded.DemoCard[12:]))
	if done.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Fatalf("order ended %v: %v", done.GetStatus(), done)
	}
	if b := s.balance(t); b != 700 {
		t.Fatalf("balance after the order = %d, want 700", b)
	}
	if st := s.couponState(t, "WELCOME5"); st != couponsv1.CouponState_COUPON_STATE_REDEEMED {
		t.Fatalf("WELCOME5 is %v after the order", st)
	}

	grpc := login(t, sys.URL(), connect.WithGRPC())
	failed := grpc.checkout(t, "TEA10", 200, grpc.card(t, embedded.DemoCardFailCapture[12:]))
	if failed.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED {
		t.Fatalf("order with a failing capture ended %v", failed.GetStatus())
	}
	for _, st := range failed.GetSteps() {
		if st.GetState() != orderprocessingv1.StepState_STEP_STATE_COMPENSATED {
			t.Fatalf("step %s ended %v", st.GetCapability(), st.GetState())
		}
	}
	if b := s.balance(t); b != 700 {
		t.Fatalf("balance after the compensated order = %d, want 700", b)
	}
	if st := s.couponState(t, "TEA10"); st != couponsv1.CouponState_COUPON_STATE_AVAILABLE {
		t.Fatalf("TEA10 is %v after compensation", st)
	}
	metrics := get(t, sys.URL()+"/metrics")
	for _, want := range []string{
		`tokenrelay_saga_outcomes_total{outcome="completed"} 1`,
		`tokenrelay_saga_outcomes_total{outcome="failed"} 1`,
		`tokenrelay_jwks_fetches_total{result="ok"} 0`, // every key in process, the metric there all the same
		`tokenrelay_rpc_requests_total{code="ok",procedure="/tokenrelay.orderprocessing.v1.OrderProcessingService/PlaceOrder"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Reflection, as buf curl uses it without a schema.
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	stream := grpcreflect.NewClient(&http.Client{Transport: h2c}, sys.URL()).NewStream(t.Context())
	names, err := stream.ListServices()
	stream.Close()
	if err != nil || !slices.Contains(names, "tokenrelay.points.v1.PointsService") {
		t.Fatalf("reflection lists %v, %v", names, err)
	}

	stop(t, sys)
	sys = start(t, dir)
	defer stop(t, sys)
	s = login(t, sys.URL())
	if b := s.balance(t); b != 700 {
		t.Fatalf("balance after restart = %d, want 700 (reseeded or lost?)", b)
	}
	list, err := s.orders.ListOrders(t.Context(), connect.NewRequest(&orderprocessingv1.ListOrdersRequest{}))
	if err != nil || len(list.Msg.GetOrders()) != 2 {
		t.Fatalf("orders after restart = %v, %v", list, err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, res.Status, err)
	}
	return string(b)
}
