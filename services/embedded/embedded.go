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
// OrderProcessing reaches each domain. Each service gets its own SQLite
// file, as each would own its database or schema when scaled out.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
	"github.com/tokenrelay/tokenrelay/services/payments"
	"github.com/tokenrelay/tokenrelay/services/points"
)

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
	// an RPC, /healthz or /.well-known/ (see package webui). nil serves a
	// short page at "/" pointing at the README.
	Web http.Handler
	// AccessTokenLifetime is the lifetime of the access tokens the identity
	// service issues. Default, and at most, 15 minutes; the browser tests
	// shorten it to see the SDK refresh mid-checkout.
	AccessTokenLifetime time.Duration
}

// System is the running embedded system.
type System struct {
	url      string
	public   *http.Server
	internal *http.Server
	closers  []func()
	done     chan struct{}
	cancel   context.CancelFunc
	errc     chan error
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

// Start opens (or creates) everything under cfg.DataDir, starts both
// listeners and the saga runner, and seeds demo data on first start. Stop it
// with Close.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = ".data"
	}
	if cfg.Logger == nil {
		return nil, errors.New("embedded: a Logger is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	s := &System{done: make(chan struct{}), errc: make(chan error, 2)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	open := func(name string) (*sqldb.DB, error) {
		db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(cfg.DataDir, name+".db"))
		if err == nil {
			s.closers = append(s.closers, func() { _ = db.Close() })
		}
		return db, err
	}
	ring := func(name string) (*keys.Ring, error) {
		return keys.OpenRing(filepath.Join(cfg.DataDir, "keys", name))
	}
	// Key rings and the vault first: everything else trusts them.
	rings := map[string]*keys.Ring{}
	for _, name := range []string{gateway.DefaultName, "identity", orderprocessing.Name, coupons.Name, points.Name, payments.Name} {
		if rings[name], err = ring(name); err != nil {
			return nil, fmt.Errorf("embedded: key ring %s: %w", name, err)
		}
	}
	vk, err := vault.LoadDir(filepath.Join(cfg.DataDir, "vault"))
	if err != nil {
		return nil, fmt.Errorf("embedded: vault: %w", err)
	}

	publicLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.url = "http://" + publicLn.Addr().String()
	internalLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = publicLn.Close()
		return nil, err
	}
	internalURL := "http://" + internalLn.Addr().String()

	gw := capability.Peer{Issuer: gateway.DefaultName, Keys: rings[gateway.DefaultName]}
	trust := func(name string) capability.Trust {
		return capability.Trust{Keys: rings[name], Gateway: gw, TrustDomain: gateway.DefaultTrustDomain,
			OrderProcessing: capability.Peer{Issuer: orderprocessing.Name, Keys: rings[orderprocessing.Name]}}
	}
	// Tracing: spans export over OTLP only when the standard
	// OTEL_EXPORTER_OTLP_* variables name an endpoint; every span carries
	// the txn.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "tokenrelay"})
	if err != nil {
		return nil, fmt.Errorf("embedded: telemetry: %w", err)
	}
	s.closers = append(s.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	})
	// Handlers: tracing, and no compression of small messages, whose gzip
	// costs more CPU than the bytes it saves on loopback.
	traced := []connect.HandlerOption{tel.HandlerOption(), connect.WithCompressMinBytes(1 << 10)}
	internal := http.NewServeMux()
	public := http.NewServeMux() // non-RPC paths behind the gateway
	// Prometheus metrics of the whole process: every RPC as the gateway
	// answered it (by procedure and code), saga outcomes, signatures.
	// Served at /metrics next to the API; keep it off a public ingress.
	metrics := server.NewMetrics()
	public.Handle("GET "+server.MetricsPath, metrics.Handler())
	muxes := map[string]*http.ServeMux{}
	mount := func(name string) *http.ServeMux {
		m := http.NewServeMux()
		muxes[name] = m
		internal.Handle("/"+name+"/", http.StripPrefix("/"+name, m))
		return m
	}
	log := cfg.Logger

	db, err := open("identity")
	if err != nil {
		return nil, err
	}
	var users []identity.User
	if cfg.Seed {
		users = identity.DemoUsers()
	}
	id, err := identity.New(ctx, identity.Config{
		DB: db, Vault: vk, Logger: log.With("service", "identity"), Keys: rings["identity"], Issuer: s.url,
		Gateway: gw, TrustDomain: gateway.DefaultTrustDomain, Users: users, AccessTokenLifetime: cfg.AccessTokenLifetime,
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, id.Close)
	id.Register(mount("identity"), traced...)
	public.Handle(identity.DiscoveryPath, id.Discovery())
	public.Handle(identity.JWKSPath, id.JWKS())

	if db, err = open(coupons.Name); err != nil {
		return nil, err
	}
	cs, err := coupons.New(ctx, coupons.Config{DB: db, Vault: vk, Logger: log.With("service", coupons.Name), Trust: trust(coupons.Name)})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, cs.Close)
	cs.Register(mount(coupons.Name), traced...)
	public.Handle("/.well-known/jwks/coupons.json", cs.JWKS())

	if db, err = open(points.Name); err != nil {
		return nil, err
	}
	ps, err := points.New(ctx, points.Config{DB: db, Vault: vk, Logger: log.With("service", points.Name), Trust: trust(points.Name)})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, ps.Close)
	ps.Register(mount(points.Name), traced...)
	public.Handle("/.well-known/jwks/points.json", ps.JWKS())

	if db, err = open(payments.Name); err != nil {
		return nil, err
	}
	procDB, err := open("payments-processor")
	if err != nil {
		return nil, err
	}
	pay, err := payments.New(ctx, payments.Config{DB: db, ProcessorDB: procDB, Vault: vk, Logger: log.With("service", payments.Name), Trust: trust(payments.Name)})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, pay.Close)
	pay.Register(mount(payments.Name), traced...)
	public.Handle("/.well-known/jwks/payments.json", pay.JWKS())

	if db, err = open(orderprocessing.Name); err != nil {
		return nil, err
	}
	op, err := orderprocessing.New(ctx, orderprocessing.Config{
		DB: db, Keys: rings[orderprocessing.Name], Vault: vk, Gateway: gw, TrustDomain: gateway.DefaultTrustDomain,
		Routes: DefaultRoutes(internalURL),
		IssuerKeys: map[string]keys.Source{
			coupons.Name: rings[coupons.Name], points.Name: rings[points.Name], payments.Name: rings[payments.Name],
		},
		Logger:        log.With("service", orderprocessing.Name),
		ClientOptions: []connect.ClientOption{tel.ClientOption()},
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, op.Close)
	metrics.SagaOutcomes(op.SagaOutcomes)
	op.Register(mount(orderprocessing.Name), traced...)
	public.Handle("/.well-known/jwks/order-processing.json", op.JWKS())
	public.Handle("/.well-known/jwks/gateway.json", rings[gateway.DefaultName].Handler())

	if cfg.Web != nil {
		public.Handle("/", cfg.Web) // every other path: the app (GET and HEAD only); more specific patterns win
	} else {
		public.Handle("GET /{$}", http.HandlerFunc(placeholder))
	}
	public.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}))

	g, err := gateway.New(ctx, gateway.Config{
		Keys:    rings[gateway.DefaultName],
		Issuers: []gateway.Issuer{{Issuer: id.Issuer(), Audience: id.Audience(), Keys: id.Keys()}},
		Routes: []gateway.Route{
			{Service: identityv1connect.IdentityServiceName, Handler: muxes["identity"]},
			{Service: orderprocessingv1connect.OrderProcessingServiceName, Handler: muxes[orderprocessing.Name]},
			{Service: couponsv1connect.CouponsServiceName, Handler: muxes[coupons.Name]},
			{Service: pointsv1connect.PointsServiceName, Handler: muxes[points.Name]},
			{Service: paymentsv1connect.PaymentsServiceName, Handler: muxes[payments.Name]},
		},
		AllowedOrigins: []string{s.url},
		Fallback:       public,
		Logger:         log.With("service", "gateway"),
		Observe:        metrics.Observe,
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, g.Close)

	s.internal = httpServer(internal, 0)
	// gRPC reflection for the public services, answered without a token
	// (as gatewayd does), so that buf curl needs no schema.
	root := http.NewServeMux()
	server.MountReflection(root, []string{
		identityv1connect.IdentityServiceName, orderprocessingv1connect.OrderProcessingServiceName,
		couponsv1connect.CouponsServiceName, pointsv1connect.PointsServiceName, paymentsv1connect.PaymentsServiceName,
	})
	root.Handle("/", g)
	s.public = server.New(root)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go func() { s.errc <- serve(s.internal, internalLn) }()
	go func() { s.errc <- serve(s.public, publicLn) }()
	go func() {
		defer close(s.done)
		_ = op.Run(runCtx)
	}()
	go func() { _ = g.Run(runCtx) }()

	if cfg.Seed {
		if err := Seed(ctx, s.url, filepath.Join(cfg.DataDir, "seeded")); err != nil {
			return nil, fmt.Errorf("embedded: seed: %w", err)
		}
	}
	return s, nil
}

// httpServer returns an http.Server with the house timeouts, unencrypted
// HTTP/2 enabled (gRPC without TLS) and HTTP/1.1 (Connect, browsers).
func httpServer(h http.Handler, maxHeader int) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeader,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Err returns a channel that receives if a listener fails.
func (s *System) Err() <-chan error { return s.errc }

// Close stops the listeners (letting requests in flight finish for up to 5
// seconds) and the saga runner, then closes every store. Sagas in flight
// resume at the next start.
func (s *System) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range []*http.Server{s.public, s.internal} {
		if srv != nil {
			_ = srv.Shutdown(ctx)
		}
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

func placeholder(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(`<!doctype html><title>tokenrelay</title><h1>tokenrelay</h1>
<p>The API is served here. See the README for a checkout with <code>buf curl</code>.</p>`))
}
