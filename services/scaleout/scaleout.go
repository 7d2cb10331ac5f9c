// Package scaleout runs tokenrelay scaled out: one process per service,
// two OrderProcessing replicas behind the gateway, PostgreSQL for state
// (one schema per service), every peer's keys found by JWKS URL. It holds
// what scripts/scaleout.sh and this module's test share: the checkout
// client that drives the system through the gateway as a shopper would
// (Login, Prepare, Place, Wait), free loopback ports, health waits and the
// PostgreSQL schema clean-up. Command scaleoutctl (cmd/scaleoutctl) puts
// them at the script's disposal.
//
// The test (scaleout_test.go) builds the six binaries, starts them
// against PostgreSQL exactly as the script does, runs complete checkouts
// through the gateway, and checks what only a scaled-out deployment can
// get wrong: that orders are spread over both replicas, that the same
// tokens placed concurrently through both make one order, and that a
// replica killed in the middle of its sagas has them finished by the
// other.
package scaleout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/client"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// Demo card endings (see embedded.Seed).
const (
	CardOK          = "4242" // captured
	CardFailCapture = "0341" // fails at capture: the order ends FAILED, compensated
)

// Shopper drives checkouts through the gateway at a base URL with an
// access token.
type Shopper struct {
	// UserID is the logged-in user's id (usr_...).
	UserID   string
	orders   orderprocessingv1connect.OrderProcessingServiceClient
	coupons  couponsv1connect.CouponsServiceClient
	points   pointsv1connect.PointsServiceClient
	payments paymentsv1connect.PaymentsServiceClient
	cards    map[string]string // last4 -> payment method id
}

// Login logs user in through the gateway at base and returns its Shopper,
// a session of sdk/go/client (refreshed as needed) without its retries:
// the tests count failures and retry by themselves. opts choose the
// protocol (connect.WithGRPC()).
func Login(ctx context.Context, base, user, password string, opts ...connect.ClientOption) (*Shopper, error) {
	c := client.New(base, client.WithHTTPClient(h2cClient()), client.WithClientOptions(opts...), client.WithRetries(0))
	session, err := c.Login(ctx, user, password)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	s := &Shopper{
		UserID: session.User.ID, orders: c.Orders, coupons: c.Coupons, points: c.Points, payments: c.Payments,
		cards: map[string]string{},
	}
	pms, err := s.payments.ListPaymentMethods(ctx, connect.NewRequest(&paymentsv1.ListPaymentMethodsRequest{}))
	if err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	for _, pm := range pms.Msg.GetPaymentMethods() {
		s.cards[pm.GetLast4()] = pm.GetId()
	}
	return s, nil
}

// HasCard reports whether the user had a card ending last4 at login.
func (s *Shopper) HasCard(last4 string) bool {
	_, ok := s.cards[last4]
	return ok
}

// h2cClient speaks HTTP/2 without TLS, as gRPC needs.
func h2cClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: t}
}

// Prepared is a checkout whose confirmation tokens are ready to be placed.
type Prepared struct {
	CheckoutID string
	Total      int64
	Tokens     []string
}

// Prepare starts a checkout of two teas and a mug (61.80 EUR) and confirms
// the coupon code (if any), points (if > 0) and the rest with the card
// ending last4.
func (s *Shopper) Prepare(ctx context.Context, coupon string, points int64, last4 string) (*Prepared, error) {
	return s.PrepareItems(ctx, []*orderprocessingv1.CartItem{{Sku: "TEA-BLACK-250G", Quantity: 2}, {Sku: "MUG-STONE", Quantity: 1}}, coupon, points, last4)
}

// PrepareItems starts a checkout of items and confirms the coupon code (if
// any), points (if > 0) and what is left with the card ending last4; when
// nothing is left (the points pay for everything) no payment is confirmed
// and last4 may be empty.
func (s *Shopper) PrepareItems(ctx context.Context, items []*orderprocessingv1.CartItem, coupon string, points int64, last4 string) (*Prepared, error) {
	started, err := s.orders.StartCheckout(ctx, connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{Items: items}))
	if err != nil {
		return nil, fmt.Errorf("start checkout: %w", err)
	}
	co, cot := started.Msg.GetCheckout(), started.Msg.GetCheckoutToken()
	p := &Prepared{CheckoutID: co.GetId(), Total: co.GetTotal().GetAmountMinor()}
	remaining := p.Total
	if coupon != "" {
		c, err := s.coupons.ConfirmCoupon(ctx, connect.NewRequest(&couponsv1.ConfirmCouponRequest{CheckoutToken: cot, Code: coupon}))
		if err != nil {
			return nil, fmt.Errorf("confirm coupon: %w", err)
		}
		p.Tokens, remaining = append(p.Tokens, c.Msg.GetConfirmationToken()), remaining-c.Msg.GetDiscount().GetAmountMinor()
	}
	if points > 0 {
		c, err := s.points.ConfirmPoints(ctx, connect.NewRequest(&pointsv1.ConfirmPointsRequest{CheckoutToken: cot, Points: points}))
		if err != nil {
			return nil, fmt.Errorf("confirm points: %w", err)
		}
		p.Tokens, remaining = append(p.Tokens, c.Msg.GetConfirmationToken()), remaining-c.Msg.GetValue().GetAmountMinor()
	}
	if remaining == 0 && last4 == "" {
		return p, nil
	}
	card, ok := s.cards[last4]
	if !ok {
		return nil, fmt.Errorf("no card ending %s (was the demo data seeded?)", last4)
	}
	c, err := s.payments.ConfirmPayment(ctx, connect.NewRequest(&paymentsv1.ConfirmPaymentRequest{
		CheckoutToken: cot, PaymentMethodId: card, Amount: &typev1.Money{AmountMinor: remaining, Currency: "EUR"},
	}))
	if err != nil {
		return nil, fmt.Errorf("confirm payment: %w", err)
	}
	p.Tokens = append(p.Tokens, c.Msg.GetConfirmationToken())
	return p, nil
}

// GrantPoints gives userID points (admin only); key makes it idempotent.
// It returns the new balance.
func (s *Shopper) GrantPoints(ctx context.Context, userID string, points int64, key string) (int64, error) {
	res, err := s.points.GrantPoints(ctx, connect.NewRequest(&pointsv1.GrantPointsRequest{
		UserId: userID, Points: points, Reason: "test grant", IdempotencyKey: key,
	}))
	if err != nil {
		return 0, fmt.Errorf("grant points: %w", err)
	}
	return res.Msg.GetBalance(), nil
}

// GrantCoupon gives userID a coupon of a new campaign code taking
// amountOff minor units (EUR) off any checkout (admin only), valid for a
// day.
func (s *Shopper) GrantCoupon(ctx context.Context, userID, code string, amountOff int64) error {
	now := time.Now().UTC().Truncate(time.Second)
	_, err := s.coupons.GrantCoupon(ctx, connect.NewRequest(&couponsv1.GrantCouponRequest{
		UserId: userID, IdempotencyKey: "grant-" + code,
		Campaign: &couponsv1.Campaign{
			Code: code, Description: "test campaign", Kind: couponsv1.DiscountKind_DISCOUNT_KIND_FIXED,
			AmountOff: &typev1.Money{AmountMinor: amountOff, Currency: "EUR"}, MinimumSpend: &typev1.Money{Currency: "EUR"},
			ValidFrom: timestamppb.New(now.Add(-time.Hour)), ValidUntil: timestamppb.New(now.Add(24 * time.Hour)),
		},
	}))
	if err != nil {
		return fmt.Errorf("grant coupon %s: %w", code, err)
	}
	return nil
}

// Place places p with idempotencyKey and returns the order id.
func (s *Shopper) Place(ctx context.Context, p *Prepared, idempotencyKey string) (string, error) {
	res, err := s.orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: p.CheckoutID, ConfirmationTokens: p.Tokens, IdempotencyKey: idempotencyKey,
	}))
	if err != nil {
		return "", err
	}
	return res.Msg.GetOrder().GetId(), nil
}

// Get returns the order now.
func (s *Shopper) Get(ctx context.Context, orderID string) (*orderprocessingv1.Order, error) {
	res, err := s.orders.GetOrder(ctx, connect.NewRequest(&orderprocessingv1.GetOrderRequest{OrderId: orderID}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetOrder(), nil
}

// Final reports whether an order's status is final: COMPLETED, FAILED, or
// NEEDS_OPERATOR (final for the saga; an operator settles it).
func Final(o *orderprocessingv1.Order) bool {
	switch o.GetStatus() {
	case orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED, orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED,
		orderprocessingv1.OrderStatus_ORDER_STATUS_NEEDS_OPERATOR:
		return true
	}
	return false
}

// Wait watches the order (WatchOrder) until it is final (see Final) and
// returns it. A stream cut (its replica stopped) is watched again.
func (s *Shopper) Wait(ctx context.Context, orderID string) (*orderprocessingv1.Order, error) {
	var last *orderprocessingv1.Order
	for {
		stream, err := s.orders.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: orderID}))
		if err == nil {
			for stream.Receive() {
				last = stream.Msg().GetOrder()
			}
			err = stream.Err()
			_ = stream.Close()
		}
		if last != nil && Final(last) {
			return last, nil
		}
		if ctx.Err() != nil {
			return last, fmt.Errorf("order %s not final: %w (last error %v)", orderID, ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Checkout prepares, places and waits for one order.
func (s *Shopper) Checkout(ctx context.Context, coupon string, points int64, last4 string) (*orderprocessingv1.Order, error) {
	p, err := s.Prepare(ctx, coupon, points, last4)
	if err != nil {
		return nil, err
	}
	id, err := s.Place(ctx, p, "place-"+p.CheckoutID)
	if err != nil {
		return nil, fmt.Errorf("place order: %w", err)
	}
	return s.Wait(ctx, id)
}

// Balance returns the shopper's points balance.
func (s *Shopper) Balance(ctx context.Context) (int64, error) {
	res, err := s.points.GetBalance(ctx, connect.NewRequest(&pointsv1.GetBalanceRequest{}))
	if err != nil {
		return 0, err
	}
	return res.Msg.GetBalance(), nil
}

// FreePorts returns n loopback TCP ports free at the time of the call.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WaitHealthy polls base/readyz (readiness: the database reachable and,
// behind the gateway, the gateway's keys loaded; see package health) until
// it answers 200 or ctx ends.
func WaitHealthy(ctx context.Context, base string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(res.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", base, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fetchedOK is the count of key-set fetches installed, in a /metrics page.
var fetchedOK = regexp.MustCompile(`(?m)^tokenrelay_jwks_fetches_total\{result="ok"\} (\d+)$`)

// WaitKeysLoaded polls base/metrics until the process has installed at
// least issuers key sets (tokenrelay_jwks_fetches_total{result="ok"}), or
// ctx ends: at a deployment's start, each of its trusted issuers' keys once.
// Readiness waits for the gateway's keys only (package health): the
// domains and OrderProcessing trust each other's keys, so whichever starts
// first fails its first fetch of the other's and, for its retry backoff
// (up to a second), answers Unavailable to tokens of the other. A harness
// whose first request must succeed waits for this as well. (Before its
// hourly refresh an issuer is fetched again only for a kid missing from
// its set, which a deployment's own tokens do not carry: at the start the
// count is the issuers loaded.)
func WaitKeysLoaded(ctx context.Context, base string, issuers int) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(res.Body)
			_ = res.Body.Close()
			err = rerr
			if err == nil {
				n := 0
				if m := fetchedOK.FindSubmatch(b); m != nil {
					n, _ = strconv.Atoi(string(m[1]))
				}
				if n >= issuers {
					return nil
				}
				err = fmt.Errorf("%d of %d key sets loaded", n, issuers)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: peers' keys not loaded: %w", base, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Schemas returns the schema of each service for a run named prefix (a
// lower-case identifier): prefix_<service>.
func Schemas(prefix string) map[string]string {
	m := map[string]string{}
	for _, s := range []string{"identity", "coupons", "points", "payments", "orderprocessing"} {
		m[s] = prefix + "_" + s
	}
	return m
}

// DropSchemas drops every schema named prefix_* (CASCADE) in the
// PostgreSQL database at pgURL: the schemas of one run, the processor's
// included.
func DropSchemas(ctx context.Context, pgURL, prefix string) ([]string, error) {
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("scaleout: invalid schema prefix %q", prefix)
	}
	db, err := sqldb.Open(ctx, pgURL, sqldb.WithMaxOpenConns(1))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.SQL().QueryContext(ctx,
		`SELECT schema_name FROM information_schema.schemata WHERE starts_with(schema_name, $1) ORDER BY 1`, prefix+"_")
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			_ = rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for _, n := range names {
		// n starts with a valid prefix and comes from the catalog; quote it
		// all the same.
		if _, err := db.SQL().ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+strings.ReplaceAll(n, `"`, `""`)+`" CASCADE`); err != nil {
			return names, err
		}
	}
	return names, nil
}

// validPrefix accepts [a-z_][a-z0-9_]* of at most 40 bytes, leaving room
// for the service suffixes within PostgreSQL's 63.
func validPrefix(p string) bool {
	if p == "" || len(p) > 40 || ('0' <= p[0] && p[0] <= '9') {
		return false
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
