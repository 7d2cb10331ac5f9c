package orderprocessing_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/gateway/tts"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

// ledger is a fake domain's CapabilityService: it records, by jti, which
// order applied a token and whether that was undone, like a real domain's
// exercise table, and can be told to misbehave.
type ledger struct {
	// AuditTrail is Unimplemented: this fake issuer keeps no audit trail.
	capabilityv1connect.UnimplementedCapabilityServiceHandler
	name string
	mu   sync.Mutex
	// applied maps jti -> order; effects counts applications (a second
	// application of one jti would be a double spend).
	applied     map[string]string
	compensated map[string]bool
	effects     map[string]int
	calls       int
	// fault, when set, is consulted before each call; it may return an
	// error to answer with (errHang: no answer at all), or cancel a runner.
	fault func(kind string, call int) error
	// after, when set, runs after an effect is applied or undone and before
	// the answer (a crash here leaves the caller not knowing).
	after func(kind string)
	// log gets a line per call, as a real domain's: "exercise" or
	// "compensate", with the order and the call's transaction (its txn by
	// authn.NewLogHandler, its subject and scope).
	log *slog.Logger
}

// logCall logs a call as a real domain does, with the transaction token the
// saga's call carried (none: no txn, subject or scope).
func (l *ledger) logCall(ctx context.Context, kind, order string) {
	c, _ := authn.CallerFrom(ctx)
	l.log.InfoContext(ctx, kind, "domain", l.name, "order", order, "sub", c.Subject, "scope", strings.Join(c.Scopes, " "))
}

// errHang, returned by a fault, makes the ledger never answer the call: it
// waits until the caller gives up (the saga's CallTimeout), however long
// that takes, like a domain that hangs.
var errHang = errors.New("hang")

// faultAnswer answers a call with the fault's error, or, for errHang, once the
// caller has given up.
func faultAnswer(ctx context.Context, err error) error {
	if errors.Is(err, errHang) {
		<-ctx.Done()
		return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
	return err
}

func newLedger(name string, log *slog.Logger) *ledger {
	return &ledger{name: name, applied: map[string]string{}, compensated: map[string]bool{}, effects: map[string]int{}, log: log}
}

func jtiOf(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(b, &c)
	return c.JTI
}

func (l *ledger) Exercise(ctx context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	if w, ok := authn.WorkloadFrom(ctx); !ok || w != orderprocessing.Name {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("not order-processing"))
	}
	l.logCall(ctx, "exercise", req.Msg.GetOrderId())
	l.mu.Lock()
	l.calls++
	call, fault := l.calls, l.fault
	l.mu.Unlock()
	if fault != nil {
		if err := fault("exercise", call); err != nil {
			return nil, faultAnswer(ctx, err)
		}
	}
	jti := jtiOf(req.Msg.GetConfirmationToken())
	l.mu.Lock()
	switch prev, ok := l.applied[jti]; {
	case ok && prev != req.Msg.GetOrderId():
		l.mu.Unlock()
		return nil, connect.NewError(connect.CodeAlreadyExists, errors.New("exercised for another order"))
	case l.compensated[jti] && !ok:
		l.mu.Unlock()
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("voided"))
	case !ok:
		l.applied[jti] = req.Msg.GetOrderId()
		l.effects[jti]++
	}
	after := l.after
	l.mu.Unlock()
	if after != nil {
		after("exercise")
	}
	return connect.NewResponse(&capabilityv1.ExerciseResponse{Exercise: &capabilityv1.Exercise{Jti: jti, Reference: l.name + "-" + jti[:6]}}), nil
}

func (l *ledger) Compensate(ctx context.Context, req *connect.Request[capabilityv1.CompensateRequest]) (*connect.Response[capabilityv1.CompensateResponse], error) {
	l.logCall(ctx, "compensate", req.Msg.GetOrderId())
	l.mu.Lock()
	l.calls++
	call, fault := l.calls, l.fault
	l.mu.Unlock()
	if fault != nil {
		if err := fault("compensate", call); err != nil {
			return nil, faultAnswer(ctx, err)
		}
	}
	jti := jtiOf(req.Msg.GetConfirmationToken())
	l.mu.Lock()
	if _, ok := l.applied[jti]; ok && !l.compensated[jti] {
		l.effects[jti]--
	}
	l.compensated[jti] = true
	after := l.after
	l.mu.Unlock()
	if after != nil {
		after("compensate")
	}
	return connect.NewResponse(&capabilityv1.CompensateResponse{}), nil
}

// standing returns the number of effects that stand, and fails the test if
// any jti was applied twice.
func (l *ledger) standing(t *testing.T) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for jti, e := range l.effects {
		if e < 0 || e > 1 {
			t.Errorf("%s: jti %s has %d effects", l.name, jti, e)
		}
		n += e
	}
	return n
}

func (l *ledger) setFault(f func(kind string, call int) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fault = f
}

func (l *ledger) setAfter(f func(kind string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.after = f
}

// world is OrderProcessing with three fake domains.
type world struct {
	t       *testing.T
	tokens  *authntest.World
	rings   map[string]*keys.Ring
	issuers map[string]*token.Issuer
	ledgers map[string]*ledger
	// conns counts the connections each fake domain accepted.
	conns  map[string]*atomic.Int64
	routes []orderprocessing.Route
	opKeys *keys.Ring
	vault  *vault.Keyring
	// callTimeout is the saga's CallTimeout for the instances started
	// next: by default longer than any call takes on a busy machine, so
	// that only a domain that hangs (errHang) times out.
	callTimeout time.Duration
	// watchPerUser and watchTotal are the WatchOrder caps of the instances
	// started next (0: the defaults).
	watchPerUser, watchTotal int
	// watchPoll and recoverEvery, when set, are the WatchOrder poll and the
	// saga's recovery scan period of the instances started next.
	watchPoll, recoverEvery time.Duration
	// logs, when set, receives the log records of the instances started
	// next, with their txn (authn.NewLogHandler).
	logs slog.Handler
	// domainLogs receives the fake domains' lines (JSON, with their txn).
	domainLogs *syncBuffer
	// tts is the URL of the gateway's Txn-Token Service, which gives the
	// saga's calls their transaction tokens.
	tts string
	// gateway, when set, is the gateway peer of the instances started next
	// (default: the gateway's ring, in process).
	gateway *capability.Peer
}

var capabilities = map[string]string{"coupons": "coupons:redeem", "points": "points:spend", "payments": "payments:capture"}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, tokens: authntest.New(t), rings: map[string]*keys.Ring{}, issuers: map[string]*token.Issuer{}, ledgers: map[string]*ledger{},
		conns: map[string]*atomic.Int64{}, callTimeout: time.Minute, domainLogs: &syncBuffer{}}
	w.opKeys = w.tokens.OrderProcessingKeys
	domainLog := slog.New(authn.NewLogHandler(slog.NewJSONHandler(w.domainLogs, nil)))
	// The gateway's Txn-Token Service, as the deployments configure it:
	// OrderProcessing may continue its orders' transactions, for any user,
	// with the routes' capabilities as scopes.
	txnTokens, err := tts.New(tts.Config{
		Name: authntest.GatewayName, Keys: w.tokens.GatewayKeys, TrustDomain: authntest.TrustDomain, Logger: logger(),
		Workloads: []tts.Workload{{Name: orderprocessing.Name, Keys: w.opKeys, Subjects: []string{tts.AnySubject},
			Scopes: slices.Collect(maps.Values(capabilities)), Continue: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txnTokens.Close)
	ttsSrv := httptest.NewServer(txnTokens.Handler())
	t.Cleanup(ttsSrv.Close)
	w.tts = ttsSrv.URL
	if w.vault, err = vault.New(map[uint32][]byte{1: make([]byte, 32)}); err != nil {
		t.Fatal(err)
	}
	for name, capab := range capabilities {
		ring, err := keys.NewRing()
		if err != nil {
			t.Fatal(err)
		}
		is, err := token.NewIssuer(name, ring)
		if err != nil {
			t.Fatal(err)
		}
		w.rings[name], w.issuers[name], w.ledgers[name] = ring, is, newLedger(name, domainLog)
		// The fake domain authenticates OrderProcessing's workload token
		// like a real one.
		v, err := token.NewVerifier(
			token.Trust(authntest.GatewayName, w.tokens.GatewayKeys, token.Accept(token.Transaction, authntest.TrustDomain)),
			token.Trust(orderprocessing.Name, w.opKeys, token.Accept(token.Workload, name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		mux := http.NewServeMux()
		mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(w.ledgers[name], connect.WithInterceptors(
			authn.NewServerInterceptor(v, authn.AllowAnonymous(capabilityv1connect.CapabilityServiceExerciseProcedure,
				capabilityv1connect.CapabilityServiceCompensateProcedure),
				authn.RequireWorkload(capabilityv1connect.CapabilityServiceName, v, orderprocessing.Name)))))
		// Like every tokenrelay service (server.New): HTTP/1.1 and h2c.
		srv := httptest.NewUnstartedServer(mux)
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		conns := new(atomic.Int64)
		w.conns[name] = conns
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		stage := 1
		if name == "payments" {
			stage = 2
		}
		w.routes = append(w.routes, orderprocessing.Route{Capability: capab, Issuer: name, Stage: stage, Endpoint: srv.URL})
	}
	return w
}

// instance is one OrderProcessing replica of a world.
type instance struct {
	svc    *orderprocessing.Service
	url    string
	client orderprocessingv1connect.OrderProcessingServiceClient
	stop   context.CancelFunc
	done   chan struct{}
}

// start starts an instance on db, its handlers registered with opts.
func (w *world) start(db *sqldb.DB, opts ...connect.HandlerOption) *instance {
	w.t.Helper()
	log := logger()
	if w.logs != nil {
		log = slog.New(authn.NewLogHandler(w.logs))
	}
	issuerKeys := map[string]keys.Source{}
	for n, r := range w.rings {
		issuerKeys[n] = r
	}
	gateway := capability.Peer{Issuer: authntest.GatewayName, Keys: w.tokens.GatewayKeys}
	if w.gateway != nil {
		gateway = *w.gateway
	}
	svc, err := orderprocessing.New(w.t.Context(), orderprocessing.Config{
		DB: db, Keys: w.opKeys, Vault: w.vault,
		Gateway:     gateway,
		TrustDomain: authntest.TrustDomain, Routes: w.routes, IssuerKeys: issuerKeys, TxnTokenURL: w.tts,
		Logger: log,
		Saga: orderprocessing.SagaConfig{
			Lease: 600 * time.Millisecond, CallTimeout: w.callTimeout, Backoff: 5 * time.Millisecond,
			MaxBackoff: 20 * time.Millisecond, RecoverEvery: cmp.Or(w.recoverEvery, 50*time.Millisecond), MaxAttempts: 3,
		},
		WatchPerUser: w.watchPerUser, WatchTotal: w.watchTotal, WatchPoll: w.watchPoll,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, opts...)
	srv := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{svc: svc, url: srv.URL, client: orderprocessingv1connect.NewOrderProcessingServiceClient(srv.Client(), srv.URL), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		_ = svc.Run(ctx)
	}()
	w.t.Cleanup(func() {
		in.crash()
		srv.Close()
		svc.Close()
	})
	return in
}

// crash stops the replica's saga runner (as a SIGKILL would, minus the
// lease release that a real crash skips; the lease then simply expires).
func (in *instance) crash() {
	in.stop()
	<-in.done
}

func header[T any](h http.Header, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	for k, v := range h {
		r.Header()[k] = v
	}
	return r
}

func (w *world) as(user string) http.Header { return w.tokens.As(w.t, user, "shop") }

// checkout starts a checkout of one green tea (12.50 EUR) for user.
func (w *world) checkout(in *instance, user string) *orderprocessingv1.Checkout {
	w.t.Helper()
	res, err := in.client.StartCheckout(w.t.Context(), header(w.as(user), &orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "TEA-GREEN-100G", Quantity: 1}},
	}))
	if err != nil {
		w.t.Fatal(err)
	}
	if res.Msg.GetCheckoutToken() == "" || res.Header().Get("Checkout-Token") != res.Msg.GetCheckoutToken() {
		w.t.Fatal("StartCheckout returned no checkout token")
	}
	return res.Msg.GetCheckout()
}

// confirmation signs what a domain would after confirming.
func (w *world) confirmation(issuer, user, checkoutID string, amount int64, mod ...func(*token.ConfirmationClaims)) string {
	w.t.Helper()
	c := token.ConfirmationClaims{
		Registered:        token.Registered{Subject: user, Audience: []string{orderprocessing.Name}},
		OrderProcessingID: checkoutID,
		Capabilities:      []string{capabilities[issuer]},
		Constraints:       map[string]string{"ref": issuer},
		Settlement:        token.Settlement{AmountMinor: amount, Currency: "EUR"},
	}
	for _, m := range mod {
		m(&c)
	}
	raw, _, err := token.Issue(w.t.Context(), w.issuers[issuer], token.Confirmation, c)
	if err != nil {
		w.t.Fatal(err)
	}
	return raw
}

// tokens returns the three confirmations that settle a 1250 EUR checkout.
func (w *world) tokens3(user, checkoutID string) []string {
	return []string{
		w.confirmation("coupons", user, checkoutID, 250),
		w.confirmation("points", user, checkoutID, 300),
		w.confirmation("payments", user, checkoutID, 700),
	}
}

func (w *world) place(in *instance, user, checkoutID string, toks []string, key string) (*orderprocessingv1.Order, error) {
	w.t.Helper()
	res, err := in.client.PlaceOrder(w.t.Context(), header(w.as(user), &orderprocessingv1.PlaceOrderRequest{
		CheckoutId: checkoutID, ConfirmationTokens: toks, IdempotencyKey: key,
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetOrder(), nil
}

// testContext is the test's context, ending a little before the test
// binary's -timeout would stop it (t.Context() ends only once the test has
// returned): the bound of every wait, so that a wait for something that
// never comes fails with a message, and one that is merely slow passes.
func testContext(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Until(d)/20))
		t.Cleanup(cancel)
	}
	return ctx
}

// await watches an order until it is final, and returns every state seen.
func (w *world) await(in *instance, user, orderID string) []*orderprocessingv1.Order {
	w.t.Helper()
	return w.watch(in, user, orderID, func(*orderprocessingv1.Order) {})
}

// watch is await that also hands each state to each as it arrives.
func (w *world) watch(in *instance, user, orderID string, each func(*orderprocessingv1.Order)) []*orderprocessingv1.Order {
	w.t.Helper()
	stream, err := in.client.WatchOrder(testContext(w.t), header(w.as(user), &orderprocessingv1.WatchOrderRequest{OrderId: orderID}))
	if err != nil {
		w.t.Fatal(err)
	}
	var seen []*orderprocessingv1.Order
	for stream.Receive() {
		seen = append(seen, stream.Msg().GetOrder())
		each(stream.Msg().GetOrder())
	}
	if err := stream.Err(); err != nil {
		last := "none"
		if len(seen) > 0 {
			last = fmt.Sprint(seen[len(seen)-1])
		}
		w.t.Fatalf("WatchOrder: %v; last state seen: %s", err, last)
	}
	if len(seen) == 0 {
		w.t.Fatal("WatchOrder sent nothing")
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].GetVersion() <= seen[i-1].GetVersion() {
			w.t.Fatalf("WatchOrder sent version %d after %d", seen[i].GetVersion(), seen[i-1].GetVersion())
		}
	}
	return seen
}

func final(seen []*orderprocessingv1.Order) *orderprocessingv1.Order { return seen[len(seen)-1] }

// consistent checks the ledgers against a final order: completed means every
// effect stands; failed means none does.
func (w *world) consistent(o *orderprocessingv1.Order) {
	w.t.Helper()
	standing := 0
	for _, l := range w.ledgers {
		standing += l.standing(w.t)
	}
	switch o.GetStatus() {
	case orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED:
		if standing != len(o.GetSteps()) {
			w.t.Fatalf("completed order but %d of %d effects stand", standing, len(o.GetSteps()))
		}
	case orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED:
		if standing != 0 {
			w.t.Fatalf("failed order but %d effects stand", standing)
		}
		for _, st := range o.GetSteps() {
			if st.GetState() != orderprocessingv1.StepState_STEP_STATE_COMPENSATED {
				w.t.Fatalf("failed order with step %s %v", st.GetCapability(), st.GetState())
			}
		}
	default:
		w.t.Fatalf("order ended %v", o.GetStatus())
	}
}

var errCrash = fmt.Errorf("crash")

// logger discards logs unless TOKENRELAY_TEST_LOG is set.
func logger() *slog.Logger {
	if os.Getenv("TOKENRELAY_TEST_LOG") != "" {
		return slog.New(authn.NewLogHandler(slog.NewTextHandler(os.Stderr, nil)))
	}
	return slog.New(authn.NewLogHandler(slog.DiscardHandler))
}
