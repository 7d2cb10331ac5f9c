package embedded_test

// Database connections lost under the services (issue 15): every service on
// PostgreSQL, its backends terminated with pg_terminate_backend as an
// operator, a failover or a pooler restart would. A lost connection is a
// dependency down: the RPC answers unavailable, which clients retry, never
// internal, which they must not; and no placed order is lost.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// pgSystem is the embedded system with every service's database on
// PostgreSQL, one schema each. Its connections carry an application_name
// of their own, so that the test terminates its own backends only, never
// those of other tests sharing the server.
type pgSystem struct {
	*embedded.System
	app    string // application_name and schema prefix
	admin  *sqldb.DB
	schema func(service string) string
}

func startOnPostgres(t *testing.T) *pgSystem {
	t.Helper()
	pgURL := sqldbtest.PostgresURL(t) // skips without PostgreSQL
	var suffix [5]byte
	_, _ = rand.Read(suffix[:])
	app := "t_dbloss_" + hex.EncodeToString(suffix[:])
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	ctx := context.Background()
	admin, err := sqldb.Open(ctx, pgURL, sqldb.WithMaxOpenConns(2))
	if err != nil {
		t.Fatal(err)
	}
	p := &pgSystem{app: app, admin: admin, schema: func(service string) string {
		return app + "_" + strings.ReplaceAll(service, "-", "_")
	}}
	var (
		mu      sync.Mutex
		schemas []string
	)
	t.Cleanup(func() {
		defer admin.Close()
		for _, s := range schemas {
			if _, err := admin.SQL().ExecContext(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", s, err)
			}
		}
	})
	cfg := embedded.WithDatabases(embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	}, func(ctx context.Context, name string) (*sqldb.DB, error) {
		mu.Lock()
		schemas = append(schemas, p.schema(name))
		mu.Unlock()
		// Six databases share the server with other tests: a small pool.
		return sqldb.Open(ctx, u.String(), sqldb.WithSchema(p.schema(name)), sqldb.WithMaxOpenConns(3))
	})
	if p.System, err = embedded.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, p.System) })
	return p
}

// terminate ends every backend of the system's connections and returns
// how many it ended.
func (p *pgSystem) terminate(ctx context.Context) (int, error) {
	var n int
	err := p.admin.SQL().QueryRowContext(ctx,
		`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, p.app).Scan(&n)
	return n, err
}

// TestStoreUnavailableOnPostgres: a Points handler whose query is running
// when its backend is terminated answers unavailable (retry), not
// internal, through the gateway; and the next call is served.
func TestStoreUnavailableOnPostgres(t *testing.T) {
	t.Parallel()
	p := startOnPostgres(t)
	s := login(t, p.URL())
	if b := s.balance(t); b != 1000 {
		t.Fatalf("seeded balance = %d", b)
	}
	ctx := t.Context()
	// The admin holds the balances table, so GetBalance's query waits on
	// it: it is running when its backend is terminated.
	lock, err := p.admin.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.ExecContext(ctx, "LOCK TABLE "+p.schema("points")+".balances IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.points.GetBalance(ctx, connect.NewRequest(&pointsv1.GetBalanceRequest{}))
		errc <- err
	}()
	var pid int
	for pid == 0 { // the server's view of the waiting query: a condition, not a clock
		select {
		case err := <-errc:
			t.Fatalf("GetBalance returned before waiting on the lock: %v", err)
		default:
		}
		err := p.admin.SQL().QueryRowContext(ctx,
			`SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, p.app).Scan(&pid)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.admin.SQL().ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("GetBalance on a terminated backend: %v, want unavailable", err)
	}
	if ce, ok := errors.AsType[*connect.Error](err); !ok || ce.Message() != "store unavailable, retry" {
		t.Fatalf("message of %v: want the fixed text, naming nothing of the database", err)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if b := s.balance(t); b != 1000 {
		t.Fatalf("balance after the lost connection = %d", b)
	}
}

// codes counts the answers of each RPC: "ok" or the Connect code.
type codes struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *codes) add(rpc string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	c.n[rpc+" "+code]++
}

func (c *codes) count(code string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.n {
		if strings.HasSuffix(k, " "+code) {
			n += v
		}
	}
	return n
}

func (c *codes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-16s %d", k, c.n[k])
	}
	return b.String()
}

// call runs an RPC as a client should: retrying with the same arguments
// (and so the same idempotency key) while it answers unavailable, after a
// short backoff; any other answer is final.
func call[T any](ctx context.Context, seen *codes, rpc string, f func() (T, error)) (T, error) {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := f()
		seen.add(rpc, err)
		if err == nil || connect.CodeOf(err) != connect.CodeUnavailable || attempt == 30 {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(backoff): // a client's backoff, not a wait for a condition
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// TestCheckoutsWhileBackendsTerminated: a few shoppers check out while
// every backend of every service is terminated again and again. Each
// answer is ok or unavailable (retried with the same idempotency key),
// never internal or unknown; every order placed ends COMPLETED or FAILED
// (a saga whose domain stayed unreachable compensates), none is lost.
func TestCheckoutsWhileBackendsTerminated(t *testing.T) {
	t.Parallel()
	p := startOnPostgres(t)
	ctx := t.Context()
	const workers, rounds = 3, 3
	s := login(t, p.URL())
	card := s.card(t, embedded.DemoCard[12:])
	seen := &codes{}

	// The faults: every backend terminated every 50 ms until the
	// placements are over.
	placed := make(chan struct{})
	kills := make(chan int, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		total := 0
		defer func() { kills <- total }()
		for {
			select {
			case <-placed:
				return
			case <-tick.C:
				n, err := p.terminate(ctx)
				if err != nil {
					t.Errorf("terminate: %v", err)
					return
				}
				total += n
			}
		}
	}()

	var (
		mu     sync.Mutex
		orders []string
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				if id := checkoutUnderFaults(ctx, s, card, seen, fmt.Sprintf("w%d-r%d", w, r)); id != "" {
					mu.Lock()
					orders = append(orders, id)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(placed)
	terminated := <-kills

	// Every placed order ends; the sagas resume where the faults left them.
	outcomes := map[string]int{}
	for _, id := range orders {
		o := watchUntilFinal(t, s, seen, id)
		outcomes[strings.TrimPrefix(o.GetStatus().String(), "ORDER_STATUS_")]++
	}
	t.Logf("%d backends terminated; %d orders placed of %d checkouts: %v; answers:%v",
		terminated, len(orders), workers*rounds, outcomes, seen)
	for _, bad := range []string{connect.CodeInternal.String(), connect.CodeUnknown.String()} {
		if n := seen.count(bad); n > 0 {
			t.Errorf("%d answers %s under lost connections; want unavailable", n, bad)
		}
	}
	if outcomes["COMPLETED"]+outcomes["FAILED"] != len(orders) {
		t.Errorf("orders lost or not final: %v of %d", outcomes, len(orders))
	}
	if terminated == 0 {
		t.Error("no backend was terminated: the test injected no fault")
	}
}

// checkoutUnderFaults runs one checkout (1 point and the card) and
// returns the placed order's id, or "" when a step was refused for good.
func checkoutUnderFaults(ctx context.Context, s *shopper, card string, seen *codes, tag string) string {
	started, err := call(ctx, seen, "StartCheckout", func() (*connect.Response[orderprocessingv1.StartCheckoutResponse], error) {
		return s.orders.StartCheckout(ctx, connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
			Items: []*orderprocessingv1.CartItem{{Sku: "MUG-STONE", Quantity: 1}},
		}))
	})
	if err != nil {
		return ""
	}
	co, cot := started.Msg.GetCheckout(), started.Msg.GetCheckoutToken()
	pts, err := call(ctx, seen, "ConfirmPoints", func() (*connect.Response[pointsv1.ConfirmPointsResponse], error) {
		return s.points.ConfirmPoints(ctx, connect.NewRequest(&pointsv1.ConfirmPointsRequest{CheckoutToken: cot, Points: 1}))
	})
	if err != nil {
		return ""
	}
	remaining := co.GetTotal().GetAmountMinor() - pts.Msg.GetValue().GetAmountMinor()
	pay, err := call(ctx, seen, "ConfirmPayment", func() (*connect.Response[paymentsv1.ConfirmPaymentResponse], error) {
		return s.payments.ConfirmPayment(ctx, connect.NewRequest(&paymentsv1.ConfirmPaymentRequest{
			CheckoutToken: cot, PaymentMethodId: card, Amount: &typev1.Money{AmountMinor: remaining, Currency: "EUR"},
		}))
	})
	if err != nil {
		return ""
	}
	toks := []string{pts.Msg.GetConfirmationToken(), pay.Msg.GetConfirmationToken()}
	res, err := call(ctx, seen, "PlaceOrder", func() (*connect.Response[orderprocessingv1.PlaceOrderResponse], error) {
		return s.orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
			CheckoutId: co.GetId(), ConfirmationTokens: toks, IdempotencyKey: "dbloss-" + tag + "-" + co.GetId(),
		}))
	})
	if err != nil {
		return ""
	}
	return res.Msg.GetOrder().GetId()
}

// watchUntilFinal follows an order until it is COMPLETED or FAILED,
// watching again when the stream is cut.
func watchUntilFinal(t *testing.T, s *shopper, seen *codes, id string) *orderprocessingv1.Order {
	t.Helper()
	ctx := t.Context()
	for {
		var last *orderprocessingv1.Order
		_, err := call(ctx, seen, "WatchOrder", func() (struct{}, error) {
			stream, err := s.orders.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: id}))
			if err != nil {
				return struct{}{}, err
			}
			defer stream.Close()
			for stream.Receive() {
				last = stream.Msg().GetOrder()
			}
			return struct{}{}, stream.Err()
		})
		if err != nil {
			t.Fatalf("watch order %s: %v", id, err)
		}
		switch last.GetStatus() {
		case orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED, orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED:
			return last
		}
	}
}
