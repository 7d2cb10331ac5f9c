// Command gatewayd runs the gateway alone: the single public origin of the
// scaled-out deployment (see the README's "Scaled out"). It verifies
// access tokens, mints one transaction token per request and proxies each
// service's RPCs to its upstream URLs over h2c, in turn across replicas
// (see package gateway). Beside the RPCs it serves /livez, /readyz and
// /healthz (not ready until every OpenID Connect provider's discovery
// document has been read: a provider down at start is retried with
// backoff, and the gateway serves the other issuers meanwhile), its own JWKS
// (the transaction-token keys every service trusts) at
// /.well-known/jwks.json, Prometheus metrics at /metrics (every RPC by
// procedure and code, access-token refusals by reason), and gRPC
// reflection for the routed services itself, without a token and without
// asking an upstream, so that `buf curl` works against the public origin
// without a schema. With -tls-cert and -tls-key it serves HTTPS (HTTP/2
// and HTTP/1.1 by ALPN, TLS 1.2 at least) and reloads the pair on SIGHUP
// or when the files change; else HTTP/1.1 and h2c. Logs are JSON with the
// txn on standard error; SIGINT or SIGTERM stops it gracefully.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr              listen address (TOKENRELAY_ADDR, default 127.0.0.1:8080)
//	-tls-cert          certificate chain (PEM, leaf first) to serve HTTPS with, reloaded on SIGHUP or
//	                   change (TOKENRELAY_TLS_CERT, default none: HTTP/1.1 and h2c; requires -tls-key)
//	-tls-key           its private key (PEM) (TOKENRELAY_TLS_KEY; requires -tls-cert)
//	-data              data directory (TOKENRELAY_DATA, default .data/gateway)
//	-keys              transaction-token key ring directory (TOKENRELAY_KEYS, default <data>/keys)
//	-route             SERVICE=URL[,URL...]: route a service to its upstream replicas; SERVICE is a
//	                   full name (tokenrelay.points.v1.PointsService) or identity, orderprocessing,
//	                   coupons, points, payments; repeatable (TOKENRELAY_GATEWAY_ROUTES, entries
//	                   separated by spaces; required)
//	-issuer            ISS=JWKS_URL[,JWKS_URL...]: trust the access tokens of tokenrelay's identity service
//	                   ISS with the keys at JWKS_URL (several URLs: replicas of one set, tried in turn),
//	                   strictly, and let it grant admin; or ISS alone: a foreign OpenID Connect provider
//	                   with the default profile (RFC 9068: typ at+jwt, scopes in "scope", never admin),
//	                   discovered at ISS/.well-known/openid-configuration; repeatable
//	                   (TOKENRELAY_GATEWAY_ISSUERS, entries separated by spaces)
//	-issuers-file      a JSON file of foreign OpenID Connect providers, each with its verification
//	                   profile (algorithms, typ values, audience, lifetime, leeway, where the scopes,
//	                   subject and client id are, how its scopes map onto shop and admin); see
//	                   gateway.ParseIssuers and services/gateway/README.md
//	                   (TOKENRELAY_GATEWAY_ISSUERS_FILE). At least one issuer, by -issuer or the file.
//	-workloads-file    a JSON file of the workloads the Txn-Token Service issues transaction tokens to
//	                   (its allow-list: each workload's JWKS, the subjects and scopes it may ask for,
//	                   whether it may continue a transaction), see tts.ParseWorkloads
//	                   (TOKENRELAY_GATEWAY_WORKLOADS_FILE, default none: no Txn-Token Service). The
//	                   service answers form posts at /txn-token and the Connect RPC
//	                   tokenrelay.txntoken.v1.TxnTokenService on this origin.
//	-jwks-allow-insecure-http  INSECURE: JWKS over plain http:// to hosts other than loopback, on a trusted
//	                   private network only (TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP, default false: https, or
//	                   http to 127.0.0.0/8, ::1 and localhost only)
//	-audience          aud the access tokens must carry (TOKENRELAY_AUDIENCE, default tokenrelay-api)
//	-name              iss and req_wl of the transaction tokens (TOKENRELAY_GATEWAY_NAME, default gateway)
//	-trust-domain      aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-tenant            tctx tenant of the transaction tokens (TOKENRELAY_TENANT, default default)
//	-allowed-origins   comma-separated CORS origins (TOKENRELAY_ALLOWED_ORIGINS, default none)
//	-auth-failure-burst  failed authentications (refused access tokens) a client address may have
//	                   before it is refused with resource_exhausted, without verification, and its
//	                   new connections are closed as they are accepted
//	                   (TOKENRELAY_GATEWAY_AUTH_FAILURE_BURST, default 20; negative: no budget, as
//	                   behind a reverse proxy, where every client has the proxy's address)
//	-auth-failure-refill  how often a client gets one failed authentication back
//	                   (TOKENRELAY_GATEWAY_AUTH_FAILURE_REFILL, default 200ms: 5 a second)
//	-log-level         DEBUG, INFO, WARN or ERROR (TOKENRELAY_LOG_LEVEL, default INFO)
//	-shutdown-timeout  grace for requests in flight on SIGINT/SIGTERM (TOKENRELAY_SHUTDOWN_TIMEOUT, default 10s)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/gateway/tts"
)

// Config is gatewayd's configuration.
type Config struct {
	process.Process
	// Routes and Issuers as given by -route and -issuer.
	Routes, Issuers process.List
	// IssuersFile is the -issuers-file path, "" for none.
	IssuersFile string
	// WorkloadsFile is the Txn-Token Service's allow-list, "" for none.
	WorkloadsFile string
	// Audience, Name, TrustDomain, Tenant: see gateway.Config.
	Audience, Name, TrustDomain, Tenant string
	// AllowedOrigins get CORS answers.
	AllowedOrigins process.List
	// AuthFailureBurst, AuthFailureRefill: see gateway.Config.
	AuthFailureBurst  int
	AuthFailureRefill time.Duration
	// JWKS configures the fetches of the issuers' keys.
	JWKS process.JWKSConfig
	// TLS is the certificate of the public origin, if any.
	TLS process.TLSConfig
}

// shortNames are the service names -route accepts besides full names.
var shortNames = map[string]string{
	"identity":        identityv1connect.IdentityServiceName,
	"orderprocessing": orderprocessingv1connect.OrderProcessingServiceName,
	"coupons":         couponsv1connect.CouponsServiceName,
	"points":          pointsv1connect.PointsServiceName,
	"payments":        paymentsv1connect.PaymentsServiceName,
}

func main() {
	cfg := Config{Process: process.Process{Name: gateway.DefaultName}}
	cfg.Flags(flag.CommandLine, "127.0.0.1:8080")
	for _, v := range strings.Fields(os.Getenv("TOKENRELAY_GATEWAY_ROUTES")) {
		_ = cfg.Routes.Set(v)
	}
	for _, v := range strings.Fields(os.Getenv("TOKENRELAY_GATEWAY_ISSUERS")) {
		cfg.Issuers = append(cfg.Issuers, v)
	}
	flag.Func("route", "`SERVICE=URL[,URL...]`: route SERVICE (a full name, or identity, orderprocessing, coupons, points, payments) to its replicas; repeatable (env TOKENRELAY_GATEWAY_ROUTES, space-separated)",
		func(v string) error { cfg.Routes = append(cfg.Routes, v); return nil })
	flag.Func("issuer", "`ISS=JWKS_URL[,JWKS_URL...]` trusts ISS's access tokens with the keys at JWKS_URL (several: replicas, tried in turn); ISS alone is an OpenID Connect provider; repeatable (env TOKENRELAY_GATEWAY_ISSUERS, space-separated)",
		func(v string) error { cfg.Issuers = append(cfg.Issuers, v); return nil })
	flag.StringVar(&cfg.IssuersFile, "issuers-file", os.Getenv("TOKENRELAY_GATEWAY_ISSUERS_FILE"),
		"JSON `file` of foreign OpenID Connect providers and their verification profiles (env TOKENRELAY_GATEWAY_ISSUERS_FILE)")
	flag.StringVar(&cfg.WorkloadsFile, "workloads-file", os.Getenv("TOKENRELAY_GATEWAY_WORKLOADS_FILE"),
		"a JSON `file` of the workloads the Txn-Token Service serves (env TOKENRELAY_GATEWAY_WORKLOADS_FILE; default none: no Txn-Token Service)")
	cfg.JWKS.Flags(flag.CommandLine)
	cfg.TLS.Flags(flag.CommandLine)
	flag.StringVar(&cfg.Audience, "audience", process.Env("TOKENRELAY_AUDIENCE", gateway.DefaultAudience), "aud the access tokens must carry (env TOKENRELAY_AUDIENCE)")
	flag.StringVar(&cfg.Name, "name", process.Env("TOKENRELAY_GATEWAY_NAME", gateway.DefaultName), "iss and req_wl of the transaction tokens (env TOKENRELAY_GATEWAY_NAME)")
	flag.StringVar(&cfg.TrustDomain, "trust-domain", process.Env("TOKENRELAY_TRUST_DOMAIN", gateway.DefaultTrustDomain), "aud of the transaction tokens (env TOKENRELAY_TRUST_DOMAIN)")
	flag.StringVar(&cfg.Tenant, "tenant", process.Env("TOKENRELAY_TENANT", gateway.DefaultTenant), "tctx tenant of the transaction tokens (env TOKENRELAY_TENANT)")
	_ = cfg.AllowedOrigins.Set(os.Getenv("TOKENRELAY_ALLOWED_ORIGINS"))
	flag.Var(&cfg.AllowedOrigins, "allowed-origins", "comma-separated CORS `origins` (env TOKENRELAY_ALLOWED_ORIGINS)")
	flag.IntVar(&cfg.AuthFailureBurst, "auth-failure-burst", process.EnvInt("TOKENRELAY_GATEWAY_AUTH_FAILURE_BURST", gateway.DefaultAuthFailureBurst),
		"failed authentications a client address may have before it is refused without verification; negative: no budget (env TOKENRELAY_GATEWAY_AUTH_FAILURE_BURST)")
	flag.DurationVar(&cfg.AuthFailureRefill, "auth-failure-refill", process.EnvDuration("TOKENRELAY_GATEWAY_AUTH_FAILURE_REFILL", gateway.DefaultAuthFailureRefill),
		"how often a client gets one failed authentication back (env TOKENRELAY_GATEWAY_AUTH_FAILURE_REFILL)")
	flag.Parse()
	cfg.Main("gatewayd", func(ctx context.Context) error { return run(ctx, cfg) })
}

// parseRoutes turns -route values into gateway routes.
func parseRoutes(values []string) ([]gateway.Route, error) {
	var routes []gateway.Route
	for _, v := range values {
		name, urls, ok := strings.Cut(v, "=")
		list := slices.DeleteFunc(strings.Split(urls, ","), func(s string) bool { return strings.TrimSpace(s) == "" })
		if !ok || name == "" || len(list) == 0 {
			return nil, fmt.Errorf("-route %q: want SERVICE=URL[,URL...]", v)
		}
		if full, ok := shortNames[name]; ok {
			name = full
		}
		routes = append(routes, gateway.Route{Service: name, URL: strings.TrimSpace(list[0]), URLs: list[1:]})
	}
	if len(routes) == 0 {
		return nil, errors.New("-route: at least one route is required")
	}
	return routes, nil
}

func run(ctx context.Context, cfg Config) error {
	log := cfg.Logger()
	routes, err := parseRoutes(cfg.Routes)
	if err != nil {
		return err
	}
	cert, err := cfg.TLS.Reloader(log)
	if err != nil {
		return err
	}
	peers, err := process.NewPeers(log, cfg.JWKS)
	if err != nil {
		return err
	}
	defer peers.Close()
	var issuers []gateway.Issuer
	for _, v := range cfg.Issuers {
		iss, jwksURL, byURL := strings.Cut(v, "=")
		is := gateway.Issuer{Issuer: iss, Audience: cfg.Audience}
		if byURL {
			var src keys.Source
			if src, err = peers.Add(iss, jwksURL); err != nil {
				return fmt.Errorf("-issuer %q: %w", v, err)
			}
			is.Keys = src
		}
		issuers = append(issuers, is)
	}
	if cfg.IssuersFile != "" {
		data, err := os.ReadFile(cfg.IssuersFile)
		if err != nil {
			return fmt.Errorf("-issuers-file: %w", err)
		}
		foreign, err := gateway.ParseIssuers(data)
		if err != nil {
			return fmt.Errorf("-issuers-file %s: %w", cfg.IssuersFile, err)
		}
		issuers = append(issuers, foreign...)
	}
	if len(issuers) == 0 {
		return errors.New("no issuer: give -issuer or -issuers-file")
	}
	ring, err := cfg.Ring()
	if err != nil {
		return err
	}
	m := metrics.New()
	public := m.Mux() // the non-RPC paths
	public.Handle("GET "+keys.WellKnownPath, ring.Handler())
	g, err := gateway.New(ctx, gateway.Config{
		Name: cfg.Name, Keys: ring, TrustDomain: cfg.TrustDomain, Tenant: cfg.Tenant,
		Issuers: issuers, Routes: routes, AllowedOrigins: cfg.AllowedOrigins,
		AuthFailureBurst: cfg.AuthFailureBurst, AuthFailureRefill: cfg.AuthFailureRefill,
		Fallback: public, Logger: log, Observe: m.Observe,
	})
	if err != nil {
		return err
	}
	defer g.Close()
	process.ExportJWKS(m, peers, g) // keys of -issuer ISS=URL and of OIDC providers
	// Not ready until every OIDC provider is known: a load balancer sends
	// no traffic to a gateway that would refuse its tokens as unavailable.
	public.Handle("GET "+health.Path, health.Handler(map[string]health.Check{"oidc_providers": g.Ready}))
	// Reflection is answered here for every routed service: the gateway
	// would route only the services it has, and a token would be needed.
	services := make([]string, len(routes))
	for i, r := range routes {
		services[i] = r.Service
	}
	root := http.NewServeMux()
	server.MountReflection(root, services, m.HandlerOption())
	if cfg.WorkloadsFile != "" {
		svc, err := txnTokenService(cfg, ring, peers, log)
		if err != nil {
			return err
		}
		defer svc.Close()
		// Beside the gateway, not through it: a workload authenticates
		// with its own workload token, which the gateway would drop.
		for _, p := range svc.Paths() {
			root.Handle(p, svc.Handler())
		}
	}
	root.Handle("/", g)
	// A client that has spent its budget of failed authentications has its
	// connections closed as they are accepted, before any HTTP is read.
	return cfg.ServeEdge(ctx, log, root, process.Edge{Cert: cert, Accept: g.AcceptConn}, peers.Run, g.Run)
}

// txnTokenService builds the Txn-Token Service of -workloads-file, signing
// with the gateway's ring and finding each workload's keys by its JWKS.
func txnTokenService(cfg Config, ring *keys.Ring, peers *process.Peers, log *slog.Logger) (*tts.Service, error) {
	data, err := os.ReadFile(cfg.WorkloadsFile)
	if err != nil {
		return nil, fmt.Errorf("-workloads-file: %w", err)
	}
	workloads, err := tts.ParseWorkloads(data, peers.Add)
	if err != nil {
		return nil, fmt.Errorf("-workloads-file %s: %w", cfg.WorkloadsFile, err)
	}
	return tts.New(tts.Config{Name: cfg.Name, Keys: ring, TrustDomain: cfg.TrustDomain, Tenant: cfg.Tenant,
		Workloads: workloads, Logger: log})
}
