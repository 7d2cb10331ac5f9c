// Package embedded is the composition root of the embedded default: every
// tokenrelay service, the gateway and (once built) the web checkout in one
// process, with SQLite files, key rings and vault keys under one data
// directory, and demo data seeded on first start.
//
// The services talk to each other exactly as when scaled out — Connect over
// HTTP, tokens verified locally — only over a loopback listener of this
// process: the public listener is the gateway; the internal one (a random
// 127.0.0.1 port) serves each service under its own path prefix
// (/coupons/, /points/, /payments/, /order-processing/, /identity/), since
// every domain serves the same CapabilityService, and is how
// OrderProcessing reaches each domain; it serves the gateway too, under
// /gateway/, for the seeding. With Config.TLS the public listener serves
// HTTPS; the internal one stays h2c on loopback. Each service gets its own
// SQLite file, as each would own its database or schema when scaled out.
//
// The public listener answers the health probes of package health:
// /livez while the process serves; /readyz (and /healthz) once every
// database answers and, with Config.Seed, the demo data has been seeded.
// Seeding goes through the public API, so the listener serves before it is
// ready: anything that needs the demo data waits for /readyz, not for the
// port.
package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/gateway/tts"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
	"github.com/tokenrelay/tokenrelay/services/payments"
	"github.com/tokenrelay/tokenrelay/services/points"
)

// shutdownTimeout is how long Close lets requests in flight finish.
const shutdownTimeout = 5 * time.Second

// Config configures the embedded system.
type Config struct {
	// Addr is the public listen address. Default "127.0.0.1:8080"; a port of
	// 0 picks a free one (tests).
	Addr string
	// DataDir holds the SQLite files, key rings and vault keys. Default
	// ".data". Created with mode 0700.
	DataDir string
	// Seed seeds demo users and data on the first start (see Seed).
	Seed bool
	// Logger receives every service's logs; wrap its handler with
	// authn.NewLogHandler so lines carry the txn.
	Logger *slog.Logger
	// Web serves the browser checkout: every GET and HEAD path that is not
	// an RPC, a health probe (/livez, /readyz, /healthz) or /.well-known/
	// (see package webui). nil serves a short page at "/" pointing at the
	// README.
	Web http.Handler
	// AccessTokenLifetime is the lifetime of the access tokens the identity
	// service issues. Default, and at most, 15 minutes; the browser tests
	// shorten it to see the SDK refresh mid-checkout.
	AccessTokenLifetime time.Duration
	// Issuers are further access-token issuers the gateway trusts besides
	// the identity service: foreign OpenID Connect providers, each with
	// its gateway.Profile (see package gateway). Their users reach the
	// services as gateway.ForeignSubject, apart from the local ones.
	// Default none.
	Issuers []gateway.Issuer
	// ReadBodyTimeout bounds how long a client may take to send a request
	// body, on both listeners (server.WithReadBodyTimeout). Default (0)
	// server.DefaultReadBodyTimeout, 30 s; negative: no bound.
	ReadBodyTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long, on both
	// listeners (server.WithIdleTimeout). Default (0)
	// server.DefaultIdleTimeout, 2 min; negative: never.
	IdleTimeout time.Duration
	// TLS, when set, makes the public listener serve HTTPS with it, and URL
	// https://: give it NextProtos h2 and http/1.1 for HTTP/2 and HTTP/1.1
	// by ALPN (server.CertReloader.TLSConfig does). The internal listener
	// stays h2c on loopback. Default nil: HTTP/1.1 and h2c.
	TLS *tls.Config
	// Retention is how long every service keeps the records it no longer
	// needs (each service's Purge says which), purged by a task every
	// PurgeEvery. Default (0) process.DefaultRetention, 30 days; negative
	// keeps every record (consumed jtis are pruned whatever it says); else
	// at least process.MinRetention.
	Retention time.Duration
	// PurgeEvery is how often the services purge. Default (0)
	// process.DefaultPurgeEvery, 10 minutes.
	PurgeEvery time.Duration
	// SealedTokenRetention and OrderRetention are OrderProcessing's
	// (orderprocessing.Config): default 24 h and keep every order.
	SealedTokenRetention, OrderRetention time.Duration
	// WatchPerUser and WatchTotal cap OrderProcessing's WatchOrder
	// streams (orderprocessing.Config); zero takes the defaults, negative
	// is no cap.
	WatchPerUser, WatchTotal int
	// SealConstraints says, by domain name (coupons, points, payments),
	// whether the domain seals the constraints of its confirmation tokens
	// for itself alone (capabilityrpc.Config.SealConstraints, package
	// sealed). A domain it does not name takes its default: Payments
	// seals, Coupons and Points do not.
	SealConstraints map[string]bool
	// Workloads are further workloads the gateway's Txn-Token Service
	// issues transaction tokens to (batch jobs, queue consumers), besides
	// OrderProcessing, which it lets continue its orders' transactions
	// with the routing table's capabilities as scopes. Default none.
	Workloads []tts.Workload

	// beforeSeed, when set, is called with the public URL before the demo
	// data is seeded (tests hold the seeding with it).
	beforeSeed func(url string)
	// openDB, when set, opens the database of service name instead of its
	// SQLite file (tests run the system on PostgreSQL with it).
	openDB func(ctx context.Context, name string) (*sqldb.DB, error)
}

// System is the running embedded system.
type System struct {
	url     string
	ready   atomic.Bool // serving, and seeded when Config.Seed
	closers []func()    // in the order opened; Close runs them in reverse
	cancel  context.CancelFunc
	group   *errgroup.Group // the listeners and background tasks
	errc    chan error
	once    sync.Once
	err     error
	// accept filters the public listener's connections: the gateway's
	// Gateway.AcceptConn, set by run before the listener serves.
	accept func(net.Addr) bool
	// internal is the internal listener's base URL: each service under
	// /<name>/ (tests call the services directly there).
	internal string
}

// URL is the public base URL, such as "http://127.0.0.1:8080".
func (s *System) URL() string { return s.url }

// DefaultRoutes is the embedded routing table, for domains served under
// base/<name>: coupons and points in stage 1, the payment capture, the
// pivot, alone in stage 2.
func DefaultRoutes(base string) []orderprocessing.Route {
	return []orderprocessing.Route{
		{Capability: "coupons:redeem", Issuer: coupons.Name, Stage: 1, Endpoint: base + "/" + coupons.Name},
		{Capability: "points:spend", Issuer: points.Name, Stage: 1, Endpoint: base + "/" + points.Name},
		{Capability: "payments:capture", Issuer: payments.Name, Stage: 2, Endpoint: base + "/" + payments.Name},
	}
}

// face is what Start needs of a service's public face; every service keeps
// these methods.
type face interface {
	// Register mounts the service's Connect handlers on mux.
	Register(mux *http.ServeMux, opts ...connect.HandlerOption)
	// JWKS serves the keys of the tokens the service issues.
	JWKS() http.Handler
	// Close releases what the service holds (not its database).
	Close()
}

// part is one service of the system.
type part struct {
	// name is the service's path prefix on the internal listener, its key
	// ring, its SQLite file and the "service" of its log lines.
	name string
	// api is its public Connect service, which the gateway routes to it.
	api string
	// jwks is where its keys are published on the public listener.
	jwks string
	// build constructs the service on its own database.
	build func(ctx context.Context, w *wiring, db *sqldb.DB) (face, error)
}

// parts lists the services in the order they start: identity first, whose
// access tokens the gateway trusts; OrderProcessing last.
func parts() []part {
	return []part{
		{identity.Name, identityv1connect.IdentityServiceName, identity.JWKSPath, buildIdentity},
		{coupons.Name, couponsv1connect.CouponsServiceName, domainJWKS(coupons.Name), buildCoupons},
		{points.Name, pointsv1connect.PointsServiceName, domainJWKS(points.Name), buildPoints},
		{payments.Name, paymentsv1connect.PaymentsServiceName, domainJWKS(payments.Name), buildPayments},
		{orderprocessing.Name, orderprocessingv1connect.OrderProcessingServiceName, domainJWKS(orderprocessing.Name), buildOrderProcessing},
	}
}

// domainJWKS is where the keys of service name are published.
func domainJWKS(name string) string { return "/.well-known/jwks/" + name + ".json" }

// Start opens (or creates) everything under cfg.DataDir, starts both
// listeners, the saga runner and the gateway's key refresh, and seeds demo
// data on first start. Stop it with Close; Err reports a failure before.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	s := &System{errc: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	// The gateway resets the connections of a client that has spent its
	// budget of failed authentications as they are accepted, before TLS;
	// s.accept is set before the listener serves (run).
	publicLn, err := s.listen(cfg.Addr, func(remote net.Addr) bool { return s.accept(remote) })
	if err != nil {
		return nil, err
	}
	internalLn, err := s.listen("127.0.0.1:0", nil)
	if err != nil {
		return nil, err
	}
	scheme := "http://"
	if cfg.TLS != nil {
		publicLn, scheme = tls.NewListener(publicLn, cfg.TLS), "https://"
	}
	s.url = scheme + publicLn.Addr().String()
	s.internal = "http://" + internalLn.Addr().String()
	w, err := s.wire(ctx, cfg, s.internal)
	if err != nil {
		return nil, err
	}
	for _, p := range parts() {
		if err := w.add(ctx, p); err != nil {
			return nil, fmt.Errorf("embedded: %s: %w", p.name, err)
		}
	}
	root, err := w.gateway(ctx)
	if err != nil {
		return nil, fmt.Errorf("embedded: gateway: %w", err)
	}
	// Seeding calls the gateway on the internal listener, whatever the
	// public one's certificate names and whoever issued it.
	seedBase := "/" + gateway.DefaultName
	w.internal.Handle(seedBase+"/", http.StripPrefix(seedBase, root))
	s.run(ctx, cfg.Logger, w, root, publicLn, internalLn)
	if cfg.Seed {
		if cfg.beforeSeed != nil {
			cfg.beforeSeed(s.url)
		}
		if err := Seed(ctx, w.internalURL+seedBase, filepath.Join(cfg.DataDir, "seeded")); err != nil {
			return nil, fmt.Errorf("embedded: seed: %w", err)
		}
	}
	s.ready.Store(true)
	return s, nil
}

// withDefaults fills Addr and DataDir, requires Logger and creates DataDir.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = ".data"
	}
	if cfg.Logger == nil {
		return cfg, errors.New("embedded: a Logger is required")
	}
	if err := cfg.retention().Validate(); err != nil {
		return cfg, err
	}
	return cfg, os.MkdirAll(cfg.DataDir, 0o700)
}

// retention is the services' purge configuration, defaults applied.
func (cfg Config) retention() process.Retention {
	r := process.Retention{Keep: cfg.Retention, Every: cfg.PurgeEvery}
	switch {
	case r.Keep == 0:
		r.Keep = process.DefaultRetention
	case r.Keep < 0:
		r.Keep = 0
	}
	if r.Every == 0 {
		r.Every = process.DefaultPurgeEvery
	}
	return r
}

// purger is a service that purges what is past its retention: every
// service's face but the gateway's.
type purger interface {
	Purge(ctx context.Context, now time.Time, retention time.Duration) (map[string]int64, error)
}

// listen listens on addr (TCP), filtered by accept (server.Listen), until
// Close.
func (s *System) listen(addr string, accept func(net.Addr) bool) (net.Listener, error) {
	ln, err := server.Listen(addr, accept)
	if err == nil {
		s.closers = append(s.closers, func() { _ = ln.Close() })
	}
	return ln, err
}

// run serves both listeners with the house settings (server.New, one
// builder for every server) and runs the background tasks beside the
// public one, every goroutine in s.group: the first failure stops the
// system, is sent on Err and returned by Close.
func (s *System) run(ctx context.Context, log *slog.Logger, w *wiring, root http.Handler, publicLn, internalLn net.Listener) {
	ctx = s.startGroup(ctx)
	opts := []server.Option{server.WithLogger(log),
		server.WithReadBodyTimeout(w.cfg.ReadBodyTimeout), server.WithIdleTimeout(w.cfg.IdleTimeout)}
	s.goReport(func() error {
		return server.Run(ctx, server.New(w.internal, opts...), internalLn, shutdownTimeout)
	})
	s.accept = w.acceptConn
	s.goReport(func() error {
		return server.Run(ctx, server.New(root, opts...), publicLn, shutdownTimeout, w.tasks...)
	})
}

// startGroup creates s.group and returns its context: parent's values,
// cancelled by Close or the first failure, not by parent (which only
// bounds Start).
func (s *System) startGroup(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	s.cancel = cancel
	s.group, ctx = errgroup.WithContext(ctx)
	return ctx
}

// goReport runs f in s.group and sends its failure, the first only, on Err.
func (s *System) goReport(f func() error) {
	s.group.Go(func() error {
		err := f()
		if err != nil {
			select {
			case s.errc <- err:
			default:
			}
		}
		return err
	})
}

// Err returns a channel that receives the first failure of a listener or a
// background task (the saga runner, the gateway's key refresh), after which
// the system stops; Close returns it too.
func (s *System) Err() <-chan error { return s.errc }

// Close stops the listeners (letting requests in flight finish for up to 5
// seconds), then the saga runner and the gateway's key refresh, waits for
// all of them, and closes every service and store. Sagas in flight resume
// at the next start. It returns the first failure of a listener or task
// (nil after a clean stop); calling it again returns the same.
func (s *System) Close() error {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
			s.err = s.group.Wait()
		}
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
	})
	return s.err
}

// wiring is what the services are built from and mounted on while Start
// assembles the system.
type wiring struct {
	sys         *System
	cfg         Config
	internalURL string
	rings       map[string]*keys.Ring // by service name, the gateway's too
	vault       *vault.Keyring
	tel         *telemetry.Telemetry
	metrics     *metrics.Registry
	// traced are the handler options of every service: tracing, and no
	// compression of small messages, whose gzip costs more CPU than the
	// bytes it saves on loopback.
	traced   []connect.HandlerOption
	internal *http.ServeMux // each service under /<name>/
	public   *http.ServeMux // the non-RPC paths behind the gateway
	routes   []gateway.Route
	issuers  []gateway.Issuer // the access-token issuers the gateway trusts
	tasks    []server.Task    // run beside the public listener
	// acceptConn is the gateway's filter of the public listener's
	// connections (gateway.Gateway.AcceptConn).
	acceptConn func(net.Addr) bool
	// ready are the readiness checks: each database's ping, by name.
	ready map[string]health.Check
}

// wire opens the key rings and the vault, which everything else trusts,
// and sets up tracing and metrics.
func (s *System) wire(ctx context.Context, cfg Config, internalURL string) (*wiring, error) {
	w := &wiring{sys: s, cfg: cfg, internalURL: internalURL, rings: map[string]*keys.Ring{},
		internal: http.NewServeMux(), public: http.NewServeMux(), ready: map[string]health.Check{}}
	names := []string{gateway.DefaultName}
	for _, p := range parts() {
		names = append(names, p.name)
	}
	var err error
	for _, name := range names {
		if w.rings[name], err = keys.OpenRing(filepath.Join(cfg.DataDir, "keys", name)); err != nil {
			return nil, fmt.Errorf("embedded: key ring %s: %w", name, err)
		}
	}
	if w.vault, err = vault.LoadDir(filepath.Join(cfg.DataDir, "vault")); err != nil {
		return nil, fmt.Errorf("embedded: vault: %w", err)
	}
	// Tracing: spans export over OTLP only when the standard
	// OTEL_EXPORTER_OTLP_* variables name an endpoint; every span carries
	// the txn.
	if w.tel, err = telemetry.Setup(ctx, telemetry.Config{ServiceName: "tokenrelay"}); err != nil {
		return nil, fmt.Errorf("embedded: telemetry: %w", err)
	}
	s.closers = append(s.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.tel.Shutdown(sctx)
	})
	w.traced = []connect.HandlerOption{w.tel.HandlerOption(), connect.WithCompressMinBytes(1 << 10)}
	// Prometheus metrics of the whole process: every RPC as the gateway
	// answered it (by procedure and code), saga outcomes, signatures.
	// Served at /metrics next to the API; keep it off a public ingress.
	w.metrics = metrics.New()
	w.public.Handle("GET "+metrics.Path, w.metrics.Handler())
	return w, nil
}

// add opens p's database, builds p, mounts it under /<name>/ of the
// internal listener, publishes its keys and routes its API to it.
func (w *wiring) add(ctx context.Context, p part) error {
	db, err := w.open(ctx, p.name)
	if err != nil {
		return err
	}
	f, err := p.build(ctx, w, db)
	if err != nil {
		return err
	}
	w.sys.closers = append(w.sys.closers, f.Close)
	if pf, ok := f.(purger); ok {
		w.tasks = append(w.tasks, w.cfg.retention().Task(w.logger(p.name), w.metrics, p.name, pf.Purge))
	}
	mux := http.NewServeMux()
	f.Register(mux, w.traced...)
	w.internal.Handle("/"+p.name+"/", http.StripPrefix("/"+p.name, mux))
	w.public.Handle(p.jwks, f.JWKS())
	w.routes = append(w.routes, gateway.Route{Service: p.api, Handler: mux})
	return nil
}

// open opens the SQLite database <DataDir>/<name>.db until Close.
func (w *wiring) open(ctx context.Context, name string) (*sqldb.DB, error) {
	open := func(ctx context.Context, name string) (*sqldb.DB, error) {
		return sqldb.Open(ctx, "sqlite://"+filepath.Join(w.cfg.DataDir, name+".db"))
	}
	if w.cfg.openDB != nil {
		open = w.cfg.openDB
	}
	db, err := open(ctx, name)
	if err == nil {
		w.sys.closers = append(w.sys.closers, func() { _ = db.Close() })
		w.ready["database "+name] = db.SQL().PingContext
	}
	return db, err
}

// logger is the logger of service name.
func (w *wiring) logger(name string) *slog.Logger { return w.cfg.Logger.With("service", name) }

// peer is the key source of the tokens service name issues.
func (w *wiring) peer(name string) capability.Peer {
	return capability.Peer{Issuer: name, Keys: w.rings[name]}
}

// trust is how domain name trusts the gateway and OrderProcessing.
func (w *wiring) trust(name string) capability.Trust {
	return capability.Trust{Keys: w.rings[name], Gateway: w.peer(gateway.DefaultName),
		TrustDomain: gateway.DefaultTrustDomain, OrderProcessing: w.peer(orderprocessing.Name)}
}

func buildIdentity(ctx context.Context, w *wiring, db *sqldb.DB) (face, error) {
	var users []identity.User
	if w.cfg.Seed {
		users = identity.DemoUsers()
	}
	id, err := identity.New(ctx, identity.Config{
		DB: db, Vault: w.vault, Logger: w.logger(identity.Name), Keys: w.rings[identity.Name], Issuer: w.sys.url,
		Gateway: w.peer(gateway.DefaultName), TrustDomain: gateway.DefaultTrustDomain, Users: users,
		AccessTokenLifetime: w.cfg.AccessTokenLifetime,
	})
	if err != nil {
		return nil, err
	}
	w.public.Handle(identity.DiscoveryPath, id.Discovery())
	w.issuers = append(w.issuers, gateway.Issuer{Issuer: id.Issuer(), Audience: id.Audience(), Keys: id.Keys()})
	return id, nil
}

func buildCoupons(ctx context.Context, w *wiring, db *sqldb.DB) (face, error) {
	return coupons.New(ctx, coupons.Config{DB: db, Vault: w.vault, Logger: w.logger(coupons.Name), Trust: w.trust(coupons.Name),
		SealConstraints: w.cfg.SealConstraints[coupons.Name]})
}

func buildPoints(ctx context.Context, w *wiring, db *sqldb.DB) (face, error) {
	return points.New(ctx, points.Config{DB: db, Vault: w.vault, Logger: w.logger(points.Name), Trust: w.trust(points.Name),
		SealConstraints: w.cfg.SealConstraints[points.Name]})
}

func buildPayments(ctx context.Context, w *wiring, db *sqldb.DB) (face, error) {
	procDB, err := w.open(ctx, "payments-processor")
	if err != nil {
		return nil, err
	}
	return payments.New(ctx, payments.Config{DB: db, ProcessorDB: procDB, Vault: w.vault,
		Logger: w.logger(payments.Name), Trust: w.trust(payments.Name), PlainConstraints: !sealPayments(w.cfg.SealConstraints)})
}

// sealPayments is Payments' setting in seal: sealed unless it says false.
func sealPayments(seal map[string]bool) bool {
	v, ok := seal[payments.Name]
	return v || !ok
}

func buildOrderProcessing(ctx context.Context, w *wiring, db *sqldb.DB) (face, error) {
	op, err := orderprocessing.New(ctx, orderprocessing.Config{
		DB: db, Keys: w.rings[orderprocessing.Name], Vault: w.vault, Gateway: w.peer(gateway.DefaultName),
		TrustDomain: gateway.DefaultTrustDomain, Routes: DefaultRoutes(w.internalURL),
		IssuerKeys: map[string]keys.Source{
			coupons.Name: w.rings[coupons.Name], points.Name: w.rings[points.Name], payments.Name: w.rings[payments.Name],
		},
		Logger:        w.logger(orderprocessing.Name),
		ClientOptions: []connect.ClientOption{w.tel.ClientOption()},
		// The gateway serves the Txn-Token Service; the internal listener
		// reaches it under /gateway/ (see Start).
		TxnTokenURL: w.internalURL + "/" + gateway.DefaultName, TracerProvider: w.tel.TracerProvider(),
		WatchPerUser: w.cfg.WatchPerUser, WatchTotal: w.cfg.WatchTotal,
		SealedTokenRetention: w.cfg.SealedTokenRetention, OrderRetention: w.cfg.OrderRetention,
	})
	if err != nil {
		return nil, err
	}
	op.Export(w.metrics) // saga outcomes, refused compensations
	w.tasks = append(w.tasks, op.Run)
	return op, nil
}

// gateway builds the gateway in front of every service and returns the
// public listener's handler: the gateway, plus gRPC reflection for the
// public services, answered without a token (as gatewayd does) so that buf
// curl needs no schema.
func (w *wiring) gateway(ctx context.Context) (http.Handler, error) {
	w.public.Handle(domainJWKS(gateway.DefaultName), w.rings[gateway.DefaultName].Handler())
	if w.cfg.Web != nil {
		w.public.Handle("/", w.cfg.Web) // every other path: the app (GET and HEAD only); more specific patterns win
	} else {
		w.public.Handle("GET /{$}", http.HandlerFunc(placeholder))
	}
	w.ready["seed"] = func(context.Context) error {
		if !w.sys.ready.Load() {
			return errNotReady
		}
		return nil
	}
	// Not ready until the gateway knows every OIDC provider of
	// Config.Issuers (always ready without any).
	var g *gateway.Gateway
	w.ready["oidc_providers"] = func(ctx context.Context) error {
		if g == nil {
			return errNotReady
		}
		return g.Ready(ctx)
	}
	health.Mount(w.public, w.ready)
	g, err := gateway.New(ctx, gateway.Config{
		Keys: w.rings[gateway.DefaultName], Issuers: append(w.issuers, w.cfg.Issuers...), Routes: w.routes,
		AllowedOrigins: []string{w.sys.url}, Fallback: w.public,
		Logger: w.logger("gateway"), Observe: w.metrics.Observe,
	})
	if err != nil {
		return nil, err
	}
	w.sys.closers = append(w.sys.closers, g.Close)
	w.tasks = append(w.tasks, g.Run)
	var scopes []string
	for _, r := range DefaultRoutes(w.internalURL) {
		scopes = append(scopes, r.Capability)
	}
	txnTokens, err := tts.New(tts.Config{
		Keys: w.rings[gateway.DefaultName], Logger: w.logger("gateway"),
		Workloads: append([]tts.Workload{{
			Name: orderprocessing.Name, Keys: w.rings[orderprocessing.Name],
			Subjects: []string{tts.AnySubject}, Scopes: scopes, Continue: true,
		}}, w.cfg.Workloads...),
	})
	if err != nil {
		return nil, err
	}
	w.sys.closers = append(w.sys.closers, txnTokens.Close)
	// Every key is in process here: the JWKS counters stay 0, exported so
	// that dashboards and alerts on them work on both deployments.
	process.ExportJWKS(w.metrics, g)
	w.acceptConn = g.AcceptConn
	root := http.NewServeMux()
	var services []string
	for _, r := range w.routes {
		services = append(services, r.Service)
	}
	server.MountReflection(root, services)
	for _, p := range txnTokens.Paths() {
		root.Handle(p, txnTokens.Handler())
	}
	root.Handle("/", g)
	return root, nil
}

// errNotReady is the readiness check's failure while Start is still
// seeding the demo data.
var errNotReady = errors.New("embedded: starting")

func placeholder(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(`<!doctype html><title>tokenrelay</title><h1>tokenrelay</h1>
<p>The API is served here. See the README for a checkout with <code>buf curl</code>.</p>`))
}
