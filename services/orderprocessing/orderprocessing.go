// Package orderprocessing is the orchestrator of the Capability Token Relay:
// it owns the catalog and prices checkouts, signs checkout tokens, verifies
// the confirmation tokens of the domains by their envelope only, stores each
// order with its tokens encrypted at rest, and runs the durable saga that
// relays every token to its issuer's CapabilityService and compensates on
// failure. This package is its public face: Config, New, the routing table.
//
// It imports no code of any domain service: what it knows of them is the
// routing table (configuration) and the generic capability.v1 protocol.
//
// What it keeps is bounded by [Service.Purge], which the process runs
// every -purge-every: consumed jtis go once their token expired, sealed
// tokens a day after their order finished, unplaced checkouts after the
// retention; finished orders themselves are kept unless
// Config.OrderRetention says otherwise.
package orderprocessing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/txntoken"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/ports"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/saga"
)

// Name is OrderProcessing's issuer and workload name, and the audience of
// every confirmation token.
const Name = capability.Audience

// Route is one line of the routing table: tokens granting Capability, signed
// by Issuer, are exercised at Endpoint (the base URL of the issuer's
// CapabilityService) in Stage. Stages run in ascending order; put the
// payment capture, the pivot that cannot be undone cheaply, in the last
// stage.
type Route struct {
	Capability string `json:"capability"`
	Issuer     string `json:"issuer"`
	Stage      int    `json:"stage"`
	Endpoint   string `json:"endpoint"`
	// JWKS is the URL of the issuer's key set, for deployments that reach
	// the issuer by URL; empty when its keys are given in process.
	JWKS string `json:"jwks,omitempty"`
}

var capabilityPattern = regexp.MustCompile(`^([a-z][a-z0-9-]{0,31}):[a-z][a-z0-9-]{0,31}$`)

// ParseRoutes reads a routing table in JSON: {"routes": [Route...]}, and
// validates it: capabilities "namespace:action", one route per capability,
// one issuer per namespace (an issuer may grant only its own namespace),
// positive stages, an endpoint for each.
func ParseRoutes(r io.Reader) ([]Route, error) {
	var doc struct {
		Routes []Route `json:"routes"`
	}
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("orderprocessing: routing table: %w", err)
	}
	return doc.Routes, validateRoutes(doc.Routes)
}

// namespaces returns the capability namespace of each issuer.
func namespaces(routes []Route) (map[string]string, error) {
	ns := map[string]string{}
	for _, r := range routes {
		m := capabilityPattern.FindStringSubmatch(r.Capability)
		if m == nil {
			return nil, fmt.Errorf("orderprocessing: route %q: capability must be namespace:action", r.Capability)
		}
		if prev, ok := ns[r.Issuer]; ok && prev != m[1] {
			return nil, fmt.Errorf("orderprocessing: issuer %q grants two namespaces, %q and %q", r.Issuer, prev, m[1])
		}
		ns[r.Issuer] = m[1]
	}
	return ns, nil
}

func validateRoutes(routes []Route) error {
	if len(routes) == 0 {
		return errors.New("orderprocessing: the routing table is empty")
	}
	seen := map[string]bool{}
	for _, r := range routes {
		switch {
		case seen[r.Capability]:
			return fmt.Errorf("orderprocessing: two routes for %q", r.Capability)
		case r.Issuer == "" || r.Endpoint == "":
			return fmt.Errorf("orderprocessing: route %q needs an issuer and an endpoint", r.Capability)
		case r.Stage < 1:
			return fmt.Errorf("orderprocessing: route %q: stage must be at least 1", r.Capability)
		}
		seen[r.Capability] = true
	}
	_, err := namespaces(routes)
	return err
}

// Config configures the service. Fields without a default are required.
type Config struct {
	// DB is the service's database; New migrates it.
	DB *sqldb.DB
	// Keys is OrderProcessing's own ring: it signs checkout and workload
	// tokens.
	Keys *keys.Ring
	// Vault encrypts the confirmation tokens stored with each order.
	Vault *vault.Keyring
	// Gateway issues transaction tokens for the audience TrustDomain. Its
	// Loaded, if set (keys fetched by URL), is a readiness check.
	Gateway     capability.Peer
	TrustDomain string
	// Routes is the routing table.
	Routes []Route
	// IssuerKeys gives each route issuer's key source.
	IssuerKeys map[string]keys.Source
	// HTTPClient calls the issuers' CapabilityService; it must speak
	// HTTP/2 if an endpoint uses gRPC. Default: HTTP/2 only
	// (server.H2Transport, h2c for http://, as every tokenrelay service
	// accepts), so that the saga's concurrent calls to one issuer share one
	// multiplexed connection instead of dialling past http.DefaultClient's
	// two idle connections a host. When set, it also calls the Txn-Token
	// Service (TxnTokenURL), whose default client speaks HTTP/1.1 too.
	HTTPClient connect.HTTPClient
	// ClientOptions are added to the CapabilityService and Txn-Token
	// Service clients (tracing).
	ClientOptions []connect.ClientOption
	// TxnTokenURL is the base URL of the gateway's Txn-Token Service
	// (named Gateway.Issuer), where the saga asks, for every Exercise and
	// Compensate, for a transaction token continuing the order's
	// transaction: its txn and user, scope the step's capability. The
	// service must let OrderProcessing (Name) continue transactions for
	// any subject with the routing table's capabilities as scopes. Empty:
	// the saga's calls carry no transaction token, only the workload
	// token, and the domains' lines of them no txn.
	TxnTokenURL string
	// TracerProvider traces the saga: one span per order it drives,
	// linked to the request that placed it. Default no-op.
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
	// CheckoutTTL is how long a checkout stays open. Default 30 minutes, at
	// most 1 hour.
	CheckoutTTL time.Duration
	// Saga tunes the saga; zero values take its defaults.
	Saga SagaConfig
	// WatchPerUser caps the WatchOrder streams one user holds open at once
	// on this replica, WatchTotal those of every user: a stream beyond
	// either cap is refused with resource_exhausted (each open stream reads
	// the database every 500 ms). Zero takes DefaultWatchPerUser and
	// DefaultWatchTotal; negative: no cap.
	WatchPerUser, WatchTotal int
	// WatchPoll is how often a WatchOrder stream reads its order when no
	// change reached it: the saga of this process hands its changes to the
	// streams, and on PostgreSQL those of other replicas arrive by
	// LISTEN/NOTIFY, so the poll is a safety net (an operator's command, a
	// notification lost while the listener reconnected). Default 500 ms on
	// SQLite, 5 s on PostgreSQL.
	WatchPoll time.Duration
	// SealedTokenRetention is how long after an order ended COMPLETED or
	// FAILED (its last update) its steps keep their sealed confirmation
	// tokens, the sensitive part of an order, needed only while the saga
	// may still call an issuer with them; Purge empties them after. Zero
	// takes DefaultSealedTokenRetention, 24 hours; negative keeps them.
	// Orders NEEDS_OPERATOR keep theirs: an operator's retry needs them.
	SealedTokenRetention time.Duration
	// OrderRetention is how long an order that ended COMPLETED or FAILED
	// is kept, with its steps and checkout, before Purge deletes it. Zero
	// (the default) keeps every order: a shop keeps its order history, and
	// once its tokens are dropped an order is a small row of what was
	// bought. Orders NEEDS_OPERATOR or unfinished are never purged.
	OrderRetention time.Duration
}

// Retention defaults and bounds (Config.SealedTokenRetention,
// OrderRetention).
const (
	DefaultSealedTokenRetention = 24 * time.Hour
	// MinRetention is the shortest positive retention New accepts: longer
	// than any verifier's leeway past a token's exp.
	MinRetention = time.Minute
)

// The default caps of WatchOrder streams (Config.WatchPerUser, WatchTotal).
const (
	DefaultWatchPerUser = 8
	DefaultWatchTotal   = 1024
)

// watchCap is the cap a Config value asks for: 0 the default, negative none.
func watchCap(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// SagaConfig tunes the saga (see package saga for the defaults).
type SagaConfig struct {
	Lease, CallTimeout, Backoff, MaxBackoff, RecoverEvery time.Duration
	MaxAttempts                                           int
}

// Service is a running OrderProcessing.
type Service struct {
	server   *ports.Server
	verifier *token.Verifier
	guard    *replay.Guard
	runner   *saga.Runner
	keys     *keys.Ring
	db       *sqldb.DB
	// gatewayKeys is Config.Gateway.Loaded, a readiness check; nil for
	// keys in process.
	gatewayKeys func(context.Context) error
	store       *adapters.Store
	watch       *app.Watcher
	// sealedRetention and orderRetention are Config's, resolved: 0 keeps.
	sealedRetention, orderRetention time.Duration
	// capabilities are the routing table's, the bounded label values of
	// the refused-compensation counter.
	capabilities []string
	// refusals is PlaceOrder's budget of recorded refusals per user.
	refusals *audit.RefusalBudget
}

// New builds the service: migrates the store, builds the verifier from the
// routing table and wires the use cases and the saga. Call Run to run sagas.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Keys == nil || cfg.Vault == nil || cfg.Gateway.Keys == nil || cfg.TrustDomain == "" || cfg.Logger == nil {
		return nil, errors.New("orderprocessing: incomplete Config")
	}
	if err := validateRoutes(cfg.Routes); err != nil {
		return nil, err
	}
	for _, d := range []time.Duration{cfg.SealedTokenRetention, cfg.OrderRetention} {
		if d > 0 && d < MinRetention {
			return nil, fmt.Errorf("orderprocessing: a retention of %v is shorter than %v", d, MinRetention)
		}
	}
	ns, _ := namespaces(cfg.Routes)
	opts := []token.Option{
		token.WithVerifiedCache(1 << 14),
		token.Trust(cfg.Gateway.Issuer, cfg.Gateway.Keys, token.Accept(token.Transaction, cfg.TrustDomain)),
	}
	var audiences []string
	routes := domain.Routes{}
	for _, r := range cfg.Routes {
		routes[r.Capability] = domain.Route{Capability: r.Capability, Issuer: r.Issuer, Stage: r.Stage}
		if slices.Contains(audiences, r.Issuer) {
			continue
		}
		src, ok := cfg.IssuerKeys[r.Issuer]
		if !ok {
			return nil, fmt.Errorf("orderprocessing: no keys for issuer %q", r.Issuer)
		}
		audiences = append(audiences, r.Issuer)
		opts = append(opts, token.Trust(r.Issuer, src, token.Accept(token.Confirmation, Name), token.Namespace(ns[r.Issuer])))
	}
	v, err := token.NewVerifier(opts...)
	if err != nil {
		return nil, err
	}
	guard, err := replay.New(cfg.DB)
	if err != nil {
		v.Close()
		return nil, err
	}
	store, err := adapters.NewStore(ctx, cfg.DB, guard)
	if err != nil {
		v.Close()
		guard.Close()
		return nil, err
	}
	refusals := audit.NewRefusalBudget(audit.DefaultRefusalBurst, audit.DefaultRefusalRefill, audit.DefaultRefusalClients, cfg.Logger)
	store.LimitRefusals(refusals)
	issuer, err := token.NewIssuer(Name, cfg.Keys)
	if err != nil {
		return nil, err
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Transport: server.H2Transport()}
	}
	clients := saga.Clients{}
	for _, r := range cfg.Routes {
		if _, ok := clients[r.Issuer]; !ok {
			opts := append([]connect.ClientOption{connect.WithInterceptors(authn.NewClientInterceptor(authn.WithWorkload(issuer, r.Issuer)))},
				cfg.ClientOptions...)
			clients[r.Issuer] = capabilityv1connect.NewCapabilityServiceClient(httpClient, r.Endpoint, opts...)
		}
	}
	sealer := capability.VaultSealer{Keyring: cfg.Vault}
	poll := cfg.WatchPoll
	if poll <= 0 {
		poll = 500 * time.Millisecond
		if cfg.DB.Dialect() == sqldb.Postgres {
			poll = 5 * time.Second
		}
	}
	watch := &app.Watcher{Poll: poll, PerUser: watchCap(cfg.WatchPerUser, DefaultWatchPerUser), Total: watchCap(cfg.WatchTotal, DefaultWatchTotal)}
	var txns saga.Transactions
	if cfg.TxnTokenURL != "" {
		// The Txn-Token Service is at the gateway's origin, which may sit
		// behind a proxy that speaks only HTTP/1.1: unless the caller gave
		// a client, ALPN picks HTTP/2 over TLS, and plain HTTP is HTTP/1.1
		// with enough idle connections for the saga's concurrent calls.
		ttsClient := cfg.HTTPClient
		if ttsClient == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.MaxIdleConnsPerHost = 64
			ttsClient = &http.Client{Transport: t}
		}
		txns = transactions{
			client: txntoken.NewClient(ttsClient, cfg.TxnTokenURL, cfg.Gateway.Issuer, cfg.TrustDomain, issuer, cfg.ClientOptions...),
			v:      v,
		}
	}
	var tracer trace.Tracer
	if cfg.TracerProvider != nil {
		tracer = cfg.TracerProvider.Tracer("github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/saga")
	}
	runner := saga.New(saga.Config{
		Repo: store, Sealer: sealer, Calls: clients, Transactions: txns, Tracer: tracer, Publish: watch.Publish, Logger: cfg.Logger,
		Lease: cfg.Saga.Lease, CallTimeout: cfg.Saga.CallTimeout, MaxAttempts: cfg.Saga.MaxAttempts,
		Backoff: cfg.Saga.Backoff, MaxBackoff: cfg.Saga.MaxBackoff, RecoverEvery: cfg.Saga.RecoverEvery,
	})
	a := app.New(app.Config{
		Repo: store, Envelope: app.EnvelopeVerifier(v), Sealer: sealer, Guard: guard, Routes: routes,
		Saga: runner, Watch: watch, CheckoutTTL: cfg.CheckoutTTL, Logger: cfg.Logger, Refusals: store,
		Sign: func(ctx context.Context, c domain.Checkout) (string, domain.IssuedToken, error) {
			raw, claims, err := token.Issue(ctx, issuer, token.Checkout, token.CheckoutClaims{
				Registered:        token.Registered{Subject: c.UserID, Audience: audiences, ExpiresAt: c.ExpiresAt},
				OrderProcessingID: c.ID, AmountMinor: c.Total.AmountMinor, Currency: c.Total.Currency,
			})
			return raw, domain.IssuedToken{Issuer: claims.Issuer, JTI: claims.ID, ExpiresAt: claims.ExpiresAt}, err
		},
	})
	var caps []string
	for _, r := range cfg.Routes {
		caps = append(caps, r.Capability)
	}
	sealedRetention := cfg.SealedTokenRetention
	switch {
	case sealedRetention == 0:
		sealedRetention = DefaultSealedTokenRetention
	case sealedRetention < 0:
		sealedRetention = 0
	}
	return &Service{server: ports.NewServer(a, adapters.TokenAudit{Log: store.Audit(), Self: Name, Issuers: clients}, cfg.Logger), verifier: v, guard: guard, runner: runner, keys: cfg.Keys, db: cfg.DB,
		gatewayKeys: cfg.Gateway.Loaded, store: store, watch: watch, sealedRetention: sealedRetention, orderRetention: max(cfg.OrderRetention, 0),
		capabilities: caps, refusals: refusals}, nil
}

// Register mounts OrderProcessingService on mux behind the authentication
// interceptor (every RPC needs a transaction token), then opts'
// interceptors; and its JWKS at /.well-known/jwks.json and health at
// /healthz: the database, and the gateway's key set loaded once when it is
// fetched by URL (health.GatewayKeys).
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(authn.NewServerInterceptor(s.verifier))}, opts...)
	mux.Handle(orderprocessingv1connect.NewOrderProcessingServiceHandler(s.server, opts...))
	mux.Handle("GET "+keys.WellKnownPath, s.keys.Handler())
	checks := map[string]health.Check{"database": s.db.SQL().PingContext}
	if s.gatewayKeys != nil {
		checks[health.GatewayKeys] = s.gatewayKeys
	}
	mux.Handle("GET "+health.Path, health.Handler(checks))
}

// Run runs sagas until ctx ends: new orders, and unfinished ones left by a
// crash or by another replica whose lease expired. On PostgreSQL it also
// listens for the other replicas' order transitions, which wake this
// replica's WatchOrder streams of those orders.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.db.Dialect() == sqldb.Postgres {
		wg.Go(func() { _ = s.store.Changes(ctx, s.runner.Owner(), s.watch.ChangedAll, s.watch.Changed) })
	}
	return s.runner.Run(ctx)
}

// SagaOutcomes returns how many orders this process's saga runner ended
// COMPLETED and FAILED, for metrics.
func (s *Service) SagaOutcomes() (completed, failed int64) { return s.runner.Outcomes() }

// CompensationsRefusedTotal counts the saga steps whose compensation an
// issuer refused for good (the step COMPENSATION_REFUSED, the order
// NEEDS_OPERATOR), by capability; each step once, by the replica whose saga
// saw the refusal. Alert on any increase: such an order waits for an
// operator (tokenrelay orders stuck).
const CompensationsRefusedTotal = "tokenrelay_saga_compensations_refused_total"

// CompensationsRefused returns how many compensations of capability this
// process's saga runner saw refused for good.
func (s *Service) CompensationsRefused(capability string) int64 { return s.runner.Refused(capability) }

// SagaCallsTotal counts the saga's calls to the issuers'
// CapabilityService, by call (exercise, compensate), capability and
// outcome: applied, transient (retried) or refused for exercise;
// compensated, transient or refused_for_good for compensate. A rising
// transient count names an issuer in trouble before orders fail.
const SagaCallsTotal = "tokenrelay_saga_calls_total"

// SagaInFlight is the number of sagas this replica is driving (orders
// whose lease it holds).
const SagaInFlight = "tokenrelay_saga_in_flight"

// AuditRefusalsUnrecordedTotal counts the refusals PlaceOrder did not
// record in the audit trail because the presenting user had spent its
// budget of recorded refusals (audit.DefaultRefusalBurst, one more every
// audit.DefaultRefusalRefill).
const AuditRefusalsUnrecordedTotal = "tokenrelay_audit_refusals_unrecorded_total"

// Export registers the service's metrics with m: the saga's outcomes
// (metrics.SagaOutcomesTotal{outcome}), its refused compensations
// (CompensationsRefusedTotal{capability}), its calls (SagaCallsTotal{call,
// capability, outcome}), each capability of the routing table from 0, and
// the sagas in flight (SagaInFlight), the refusals not recorded in the
// audit trail (AuditRefusalsUnrecordedTotal); and it counts in
// metrics.RefusalsTotal{reason} every confirmation token PlaceOrder refuses
// (metrics.Registry.Refused), whether or not m's Interceptor observes the
// handlers. Call it once per registry, before serving.
func (s *Service) Export(m *metrics.Registry) {
	m.SagaOutcomes(s.SagaOutcomes)
	s.server.CountRefusals(m.Refused)
	reg := m.Prometheus()
	for _, c := range s.capabilities {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        CompensationsRefusedTotal,
			Help:        "Saga steps whose compensation an issuer refused for good (the order needs an operator), by capability.",
			ConstLabels: prometheus.Labels{"capability": c},
		}, func() float64 { return float64(s.runner.Refused(c)) }))
		for _, call := range []string{saga.CallExercise, saga.CallCompensate} {
			for _, outcome := range saga.CallOutcomes(call) {
				reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name:        SagaCallsTotal,
					Help:        "Calls of the saga to the issuers' CapabilityService, by call, capability and outcome.",
					ConstLabels: prometheus.Labels{"call": call, "capability": c, "outcome": outcome},
				}, func() float64 { return float64(s.runner.Calls(call, c, outcome)) }))
			}
		}
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: AuditRefusalsUnrecordedTotal,
		Help: "Confirmation tokens PlaceOrder refused and did not record in the audit trail: the presenting user had spent its budget of recorded refusals.",
	}, func() float64 { return float64(s.refusals.Unrecorded()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: SagaInFlight, Help: "Sagas this replica is driving now (orders whose lease it holds).",
	}, func() float64 { return float64(s.runner.InFlight()) }))
}

// Purge deletes, at now, what OrderProcessing no longer needs, and returns
// the rows deleted (for steps.sealed_token, emptied) by table, also when it
// fails part way:
//
//   - consumed_jtis: the records of tokens expired beyond the replay
//     guard's leeway (replay.Guard.Prune), whatever retention says: the
//     verifier refuses such tokens on their exp alone;
//   - steps.sealed_token: the sealed tokens of orders COMPLETED or FAILED
//     more than Config.SealedTokenRetention ago (default 24 h);
//   - orders, steps, checkouts: orders COMPLETED or FAILED more than
//     Config.OrderRetention ago, with their steps and checkout (default:
//     kept for ever);
//   - checkouts: checkouts no order was placed for (expired or cancelled)
//     that expired more than retention ago; a retention of 0 keeps them;
//   - audit_events: the events of OrderProcessing's token audit trail that
//     happened more than audit.RetentionFactor times retention ago (the
//     chain left verifiable); a retention of 0 keeps them.
//
// Orders NEEDS_OPERATOR or unfinished are never touched. The purge task of
// the process runs it every -purge-every; replicas may run it at once, each
// row going once.
func (s *Service) Purge(ctx context.Context, now time.Time, retention time.Duration) (map[string]int64, error) {
	rows := map[string]int64{}
	n, err := s.store.PruneConsumed(ctx, now)
	rows["consumed_jtis"] = n
	errs := []error{err}
	if s.sealedRetention > 0 {
		n, err := s.store.DropSealedTokens(ctx, now.Add(-s.sealedRetention))
		rows["steps.sealed_token"] = n
		errs = append(errs, err)
	}
	if s.orderRetention > 0 {
		p, err := s.store.PurgeOrders(ctx, now.Add(-s.orderRetention))
		rows["orders"], rows["steps"], rows["checkouts"] = p.Orders, p.Steps, p.Checkouts
		errs = append(errs, err)
	}
	if retention > 0 {
		n, err := s.store.PurgeCheckouts(ctx, now.Add(-retention))
		rows["checkouts"] += n
		errs = append(errs, err)
		n, err = s.store.Audit().Purge(ctx, adapters.AuditService, now.Add(-audit.RetentionFactor*retention))
		rows["audit_events"] = n
		errs = append(errs, err)
	}
	return rows, errors.Join(errs...)
}

// JWKS serves OrderProcessing's public keys (checkout and workload tokens).
func (s *Service) JWKS() http.Handler { return s.keys.Handler() }

// Close releases caches. Stop Run first.
func (s *Service) Close() {
	s.verifier.Close()
	s.guard.Close()
}

// transactions asks the Txn-Token Service for the saga's transaction tokens
// and verifies each as the domains will.
type transactions struct {
	client *txntoken.Client
	v      *token.Verifier
}

// Carry implements saga.Transactions.
func (t transactions) Carry(ctx context.Context, txn, subject, scope string) (context.Context, error) {
	raw, err := t.client.Exchange(ctx, txntoken.Request{Subject: subject, Txn: txn, Scopes: []string{scope}})
	if err != nil {
		return ctx, err
	}
	claims, err := token.Verify(ctx, t.v, token.Transaction, raw)
	if err != nil {
		return ctx, rpcerr.Token(fmt.Errorf("transaction token from the Txn-Token Service: %w", err))
	}
	if claims.Txn != txn || claims.Subject != subject {
		return ctx, connect.NewError(connect.CodeInternal, errors.New("the Txn-Token Service answered for another transaction"))
	}
	return authn.ContextWithTransaction(ctx, raw, claims), nil
}
