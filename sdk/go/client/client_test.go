package client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/client"
)

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// gateway stands for the gateway and the services behind it: it issues
// access tokens (JWT-shaped, 15 minutes: only their times are read by the
// client), refuses a token it does not know with a Bearer challenge, and
// records what it was sent.
type gateway struct {
	identityv1connect.UnimplementedIdentityServiceHandler
	pointsv1connect.UnimplementedPointsServiceHandler
	couponsv1connect.UnimplementedCouponsServiceHandler
	orderprocessingv1connect.UnimplementedOrderProcessingServiceHandler

	mu       sync.Mutex
	n        int
	valid    map[string]bool // access tokens
	refresh  string          // the current refresh token
	refreshs int             // Refresh calls
	keys     []string        // Idempotency-Key of every call, in order
	sent     []string        // checkout_token of every ConfirmCoupon
	// onRefresh, when set, runs in each Refresh call before it answers; an
	// error is its answer.
	onRefresh func() error
	// failPlace answers the first PlaceOrder calls with it, counted down.
	failPlace []error
	// refuseAll refuses every access token.
	refuseAll bool
}

func newGateway() *gateway { return &gateway{valid: map[string]bool{}} }

func (g *gateway) session() *identityv1.Session {
	g.n++
	at := jwt(g.n)
	g.valid[at] = true
	g.refresh = fmt.Sprintf("rt_%d", g.n)
	return &identityv1.Session{AccessToken: at, RefreshToken: g.refresh,
		AccessTokenExpiresAt: timestamppb.New(time.Unix(1_000_900, 0)), User: &identityv1.User{Id: "usr_1", Username: "shopper"}}
}

// jwt is an access token issued at 1,000,000 s for 15 minutes.
func jwt(n int) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"EdDSA"}`)) + "." + enc(fmt.Appendf(nil, `{"iat":1000000,"exp":1000900,"n":%d}`, n)) + ".sig"
}

// revoke makes the gateway refuse every access token issued so far.
func (g *gateway) revoke() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.valid = map[string]bool{}
}

func (g *gateway) authorize(h http.Header) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys = append(g.keys, h.Get(client.IdempotencyKeyHeader))
	tok, ok := bearer(h)
	if !ok || !g.valid[tok] || g.refuseAll {
		err := connect.NewError(connect.CodeUnauthenticated, errors.New("access token invalid or expired"))
		err.Meta().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return err
	}
	return nil
}

func bearer(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	if len(v) < 8 || v[:7] != "Bearer " {
		return "", false
	}
	return v[7:], true
}

func (g *gateway) Login(_ context.Context, req *connect.Request[identityv1.LoginRequest]) (*connect.Response[identityv1.LoginResponse], error) {
	if req.Msg.GetPassword() != "pw" {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("wrong user name or password"))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return connect.NewResponse(&identityv1.LoginResponse{Session: g.session()}), nil
}

func (g *gateway) Refresh(_ context.Context, req *connect.Request[identityv1.RefreshRequest]) (*connect.Response[identityv1.RefreshResponse], error) {
	g.mu.Lock()
	g.refreshs++
	g.keys = append(g.keys, req.Header().Get(client.IdempotencyKeyHeader))
	on := g.onRefresh
	g.mu.Unlock()
	if on != nil {
		if err := on(); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.Msg.GetRefreshToken() != g.refresh {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("refresh token invalid"))
	}
	return connect.NewResponse(&identityv1.RefreshResponse{Session: g.session()}), nil
}

func (g *gateway) GetBalance(_ context.Context, req *connect.Request[pointsv1.GetBalanceRequest]) (*connect.Response[pointsv1.GetBalanceResponse], error) {
	if err := g.authorize(req.Header()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pointsv1.GetBalanceResponse{Balance: 42}), nil
}

func (g *gateway) StartCheckout(_ context.Context, req *connect.Request[orderprocessingv1.StartCheckoutRequest]) (*connect.Response[orderprocessingv1.StartCheckoutResponse], error) {
	if err := g.authorize(req.Header()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&orderprocessingv1.StartCheckoutResponse{
		Checkout: &orderprocessingv1.Checkout{Id: "op_1"}, CheckoutToken: "checkout-token-op_1"}), nil
}

func (g *gateway) ConfirmCoupon(_ context.Context, req *connect.Request[couponsv1.ConfirmCouponRequest]) (*connect.Response[couponsv1.ConfirmCouponResponse], error) {
	if err := g.authorize(req.Header()); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.sent = append(g.sent, req.Msg.GetCheckoutToken())
	g.mu.Unlock()
	return connect.NewResponse(&couponsv1.ConfirmCouponResponse{ConfirmationToken: "ct"}), nil
}

func (g *gateway) PlaceOrder(_ context.Context, req *connect.Request[orderprocessingv1.PlaceOrderRequest]) (*connect.Response[orderprocessingv1.PlaceOrderResponse], error) {
	if err := g.authorize(req.Header()); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.failPlace) > 0 {
		err := g.failPlace[0]
		g.failPlace = g.failPlace[1:]
		return nil, err
	}
	return connect.NewResponse(&orderprocessingv1.PlaceOrderResponse{Order: &orderprocessingv1.Order{Id: "ord_1"}}), nil
}

func (g *gateway) WatchOrder(_ context.Context, req *connect.Request[orderprocessingv1.WatchOrderRequest], stream *connect.ServerStream[orderprocessingv1.WatchOrderResponse]) error {
	if err := g.authorize(req.Header()); err != nil {
		// As the gateway does for every protocol: the challenge is a
		// response header, never a trailer.
		stream.ResponseHeader().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return connect.NewError(connect.CodeUnauthenticated, errors.New("access token invalid or expired"))
	}
	for _, st := range []orderprocessingv1.OrderStatus{orderprocessingv1.OrderStatus_ORDER_STATUS_IN_PROGRESS, orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED} {
		if err := stream.Send(&orderprocessingv1.WatchOrderResponse{Order: &orderprocessingv1.Order{Id: req.Msg.GetOrderId(), Status: st}}); err != nil {
			return err
		}
	}
	return nil
}

func (g *gateway) counts() (refreshs int, keys []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refreshs, append([]string(nil), g.keys...)
}

// start serves g and returns a client of it, logged in, on clk.
func start(t *testing.T, g *gateway, clk *clock) *client.Client {
	t.Helper()
	return startWith(t, g, clk)
}

// startWith is start with further client options (the protocol).
func startWith(t *testing.T, g *gateway, clk *clock, opts ...connect.ClientOption) *client.Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(identityv1connect.NewIdentityServiceHandler(g))
	mux.Handle(pointsv1connect.NewPointsServiceHandler(g))
	mux.Handle(couponsv1connect.NewCouponsServiceHandler(g))
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(g))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, client.WithHTTPClient(srv.Client()), client.WithClock(clk.Now), client.WithRetryDelay(time.Microsecond),
		client.WithClientOptions(opts...))
	if _, err := c.Login(t.Context(), "shopper", "pw"); err != nil {
		t.Fatal(err)
	}
	return c
}

func balance(ctx context.Context, c *client.Client) error {
	_, err := c.Points.GetBalance(ctx, connect.NewRequest(&pointsv1.GetBalanceRequest{}))
	return err
}

// The access token is refreshed ahead of its expiry, on the local clock,
// by one Refresh call however many calls find it due at once.
func TestRefreshAheadSingleFlight(t *testing.T) {
	t.Parallel()
	g, clk := newGateway(), &clock{now: time.Unix(5_000_000, 0)} // the local clock is far from the server's
	c := start(t, g, clk)
	if err := balance(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n, _ := g.counts(); n != 0 {
		t.Fatalf("%d refreshes of a fresh token", n)
	}
	first, _ := c.Session()
	if !first.AccessTokenExpiresAt.Equal(clk.Now().Add(15 * time.Minute)) {
		t.Fatalf("expiry %v: want 15 minutes on the local clock", first.AccessTokenExpiresAt)
	}
	clk.Add(15*time.Minute - client.DefaultRefreshAhead) // due, not expired
	release := make(chan struct{})
	g.onRefresh = func() error { <-release; return nil }
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- balance(t.Context(), c) })
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := g.counts(); n != 1 {
		t.Fatalf("%d Refresh calls, want 1", n)
	}
	if s, _ := c.Session(); s.AccessToken == first.AccessToken {
		t.Fatal("the session was not refreshed")
	}
}

// A token the gateway refuses with a Bearer challenge is refreshed once and
// the call sent again.
func TestRefreshOnChallenge(t *testing.T) {
	t.Parallel()
	g, clk := newGateway(), &clock{now: time.Unix(1_000_000, 0)}
	c := start(t, g, clk)
	g.revoke()
	if err := balance(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n, _ := g.counts(); n != 1 {
		t.Fatalf("%d Refresh calls, want 1", n)
	}
	// A refresh that does not help is not tried again and again.
	g.mu.Lock()
	g.refuseAll = true
	g.mu.Unlock()
	err := balance(t.Context(), c)
	if e := client.AsError(err); e.Kind != client.KindUnauthenticated || e.SessionEnded {
		t.Fatalf("refused twice: %+v", e)
	}
	if n, _ := g.counts(); n != 2 {
		t.Fatalf("%d Refresh calls, want 2", n)
	}
}

// A refused refresh ends the session for every call waiting on it; an
// unavailable identity service keeps the session (and the Refresh retries
// reuse their idempotency key).
func TestRefusedRefreshEndsSessionForAll(t *testing.T) {
	t.Parallel()
	g, clk := newGateway(), &clock{now: time.Unix(1_000_000, 0)}
	c := start(t, g, clk)
	clk.Add(15 * time.Minute)

	g.onRefresh = func() error { return connect.NewError(connect.CodeUnavailable, errors.New("identity down")) }
	err := balance(t.Context(), c)
	if e := client.AsError(err); e.Kind != client.KindUnavailable || e.SessionEnded {
		t.Fatalf("identity down: %+v", e)
	}
	if _, ok := c.Session(); !ok {
		t.Fatal("an unavailable identity service ended the session")
	}
	// GetBalance is tried 3 times (it has no side effects), each time
	// after a Refresh tried 3 times with one idempotency key.
	n, keys := g.counts()
	if n != 9 || keys[0] == "" || keys[0] != keys[2] || keys[3] == keys[2] || keys[3] != keys[5] || keys[6] != keys[8] {
		t.Fatalf("Refresh tried %d times with keys %v: want 3 × 3, one key each", n, keys)
	}

	release := make(chan struct{})
	g.onRefresh = func() error {
		<-release
		return connect.NewError(connect.CodeUnauthenticated, errors.New("refresh token reused"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() { errs <- balance(t.Context(), c) })
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if e := client.AsError(err); !errors.Is(err, client.ErrSessionEnded) || !e.SessionEnded || e.Kind != client.KindUnauthenticated {
			t.Fatalf("a waiting call got %v", err)
		}
	}
	if n, _ := g.counts(); n != 10 {
		t.Fatalf("%d Refresh calls in all, want 10 (9 unavailable, 1 refused)", n)
	}
	if _, ok := c.Session(); ok {
		t.Fatal("the session survived a refused refresh")
	}
	if err := balance(t.Context(), c); !errors.Is(err, client.ErrSessionEnded) {
		t.Fatalf("a call after the end: %v", err)
	}
}

// A retry-safe call is retried on Unavailable with the same idempotency key
// (the request's, or a generated one); other refusals are not retried.
func TestRetriesReuseIdempotencyKey(t *testing.T) {
	t.Parallel()
	g, clk := newGateway(), &clock{now: time.Unix(1_000_000, 0)}
	c := start(t, g, clk)
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("down"))
	g.failPlace = []error{unavailable, unavailable}
	if _, err := c.Orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{CheckoutId: "op_1", IdempotencyKey: "place-1"})); err != nil {
		t.Fatal(err)
	}
	_, keys := g.counts()
	if len(keys) != 3 || keys[0] != "place-1" || keys[2] != "place-1" {
		t.Fatalf("keys %v, want place-1 three times", keys)
	}

	g.failPlace = []error{unavailable}
	if _, err := c.Orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{CheckoutId: "op_1"})); err != nil {
		t.Fatal(err)
	}
	_, keys = g.counts()
	if len(keys) != 5 || keys[3] == "" || keys[3] == "place-1" || keys[3] != keys[4] {
		t.Fatalf("keys %v: want one generated key, twice", keys)
	}

	g.failPlace = []error{connect.NewError(connect.CodeFailedPrecondition, errors.New("checkout expired")), unavailable}
	_, err := c.Orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{CheckoutId: "op_1"}))
	if e := client.AsError(err); e.Kind != client.KindRefused || e.Message != "checkout expired" {
		t.Fatalf("refusal: %+v", e)
	}
	if _, keys = g.counts(); len(keys) != 6 {
		t.Fatalf("a refusal was retried: %d calls", len(keys))
	}

	g.failPlace = []error{unavailable, unavailable, unavailable}
	_, err = c.Orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{CheckoutId: "op_1"}))
	if client.AsError(err).Kind != client.KindUnavailable {
		t.Fatalf("after the retries: %v", err)
	}
	if _, keys = g.counts(); len(keys) != 9 {
		t.Fatalf("%d calls, want 3 more (1 + 2 retries)", len(keys)-6)
	}
}

// The checkout token of StartCheckout goes into the domains' requests that
// leave it empty, until the checkout is placed.
func TestCheckoutTokenCarried(t *testing.T) {
	t.Parallel()
	g, clk := newGateway(), &clock{now: time.Unix(1_000_000, 0)}
	c := start(t, g, clk)
	confirm := func(tok string) {
		if _, err := c.Coupons.ConfirmCoupon(t.Context(), connect.NewRequest(&couponsv1.ConfirmCouponRequest{CheckoutToken: tok, Code: "X"})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Orders.StartCheckout(t.Context(), connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{})); err != nil {
		t.Fatal(err)
	}
	confirm("")
	confirm("mine")
	if _, err := c.Orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{CheckoutId: "op_1"})); err != nil {
		t.Fatal(err)
	}
	confirm("")
	g.mu.Lock()
	sent := append([]string(nil), g.sent...)
	g.mu.Unlock()
	if len(sent) != 3 || sent[0] != "checkout-token-op_1" || sent[1] != "mine" || sent[2] != "" || c.CheckoutToken() != "" {
		t.Fatalf("checkout tokens sent %q, kept %q", sent, c.CheckoutToken())
	}
}

// Without a session no call is sent.
func TestNoSession(t *testing.T) {
	t.Parallel()
	c := client.New("http://127.0.0.1:1") // nothing listens: nothing may be sent
	err := balance(t.Context(), c)
	if e := client.AsError(err); !e.SessionEnded || e.Kind != client.KindUnauthenticated {
		t.Fatalf("no session: %+v", e)
	}
}

func TestKinds(t *testing.T) {
	t.Parallel()
	for code, kind := range map[connect.Code]client.Kind{
		connect.CodeUnauthenticated: client.KindUnauthenticated, connect.CodePermissionDenied: client.KindForbidden,
		connect.CodeInvalidArgument: client.KindInvalid, connect.CodeOutOfRange: client.KindInvalid,
		connect.CodeNotFound: client.KindNotFound, connect.CodeAlreadyExists: client.KindConflict, connect.CodeAborted: client.KindConflict,
		connect.CodeFailedPrecondition: client.KindRefused, connect.CodeResourceExhausted: client.KindRefused,
		connect.CodeUnavailable: client.KindUnavailable, connect.CodeDeadlineExceeded: client.KindUnavailable,
		connect.CodeCanceled: client.KindCanceled, connect.CodeInternal: client.KindUnknown, connect.CodeUnimplemented: client.KindUnknown,
	} {
		if got := client.KindOf(code); got != kind {
			t.Errorf("KindOf(%v) = %s, want %s", code, got, kind)
		}
	}
	if client.AsError(nil) != nil {
		t.Error("AsError(nil) is not nil")
	}
	if e := client.AsError(context.Canceled); e.Kind != client.KindCanceled {
		t.Errorf("context.Canceled: %s", e.Kind)
	}
	if e := client.AsError(fmt.Errorf("x: %w", connect.NewError(connect.CodeNotFound, errors.New("no such coupon")))); e.Kind != client.KindNotFound || e.Message != "no such coupon" {
		t.Errorf("wrapped: %+v", e)
	}
}

// Without a bound, a retry-safe call is retried until it succeeds or its
// context ends.
func TestRetriesWithoutBound(t *testing.T) {
	t.Parallel()
	g := newGateway()
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("starting"))
	g.failPlace = []error{unavailable, unavailable, unavailable, unavailable, unavailable}
	mux := http.NewServeMux()
	mux.Handle(identityv1connect.NewIdentityServiceHandler(g))
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(g))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, client.WithHTTPClient(srv.Client()), client.WithRetries(-1),
		client.WithRetryDelay(time.Microsecond), client.WithMaxRetryDelay(time.Microsecond))
	if _, err := c.Login(t.Context(), "shopper", "pw"); err != nil {
		t.Fatal(err)
	}
	place := func(ctx context.Context) error {
		_, err := c.Orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{CheckoutId: "op_1", IdempotencyKey: "k"}))
		return err
	}
	if err := place(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, keys := g.counts(); len(keys) != 6 {
		t.Fatalf("%d calls, want 6", len(keys))
	}
	g.mu.Lock()
	g.failPlace = []error{unavailable}
	g.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := place(ctx); err == nil {
		t.Fatal("a call with an ended context succeeded")
	}
}

// A Login while a refresh is out is not undone by the refresh's answer:
// the calls waiting on the refresh get the new login's session.
func TestLoginDuringRefresh(t *testing.T) {
	t.Parallel()
	g, clk := newGateway(), &clock{now: time.Unix(1_000_000, 0)}
	c := start(t, g, clk)
	clk.Add(15 * time.Minute)
	entered, release := make(chan struct{}), make(chan struct{})
	g.onRefresh = func() error { close(entered); <-release; return nil }
	done := make(chan error, 1)
	go func() { done <- balance(t.Context(), c) }()
	<-entered
	login, err := c.Login(t.Context(), "shopper", "pw")
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the call waiting on the refresh: %v", err)
	}
	if s, _ := c.Session(); s.RefreshToken != login.RefreshToken {
		t.Fatal("the refresh's answer replaced the newer login's session")
	}
}

// A server stream refused with a Bearer challenge before its first message
// is opened again once after a refresh, with the same request.
func TestStreamRefreshOnChallenge(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]connect.ClientOption{nil, {connect.WithGRPC()}} {
		g, clk := newGateway(), &clock{now: time.Unix(1_000_000, 0)}
		c := startWith(t, g, clk, opts...)
		g.revoke()
		stream, err := c.Orders.WatchOrder(t.Context(), connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: "ord_1"}))
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for stream.Receive() {
			seen = append(seen, stream.Msg().GetOrder().GetId()+" "+stream.Msg().GetOrder().GetStatus().String())
		}
		if err := stream.Err(); err != nil || len(seen) != 2 || seen[1] != "ord_1 ORDER_STATUS_COMPLETED" {
			t.Fatalf("stream %v, %v", seen, err)
		}
		if n, _ := g.counts(); n != 1 {
			t.Fatalf("%d Refresh calls, want 1", n)
		}
	}
}
