// Command identityd runs the Identity service alone, one process of the
// scaled-out deployment (see the README's "Scaled out"): IdentityService
// (Login, Refresh, Logout) over Connect, gRPC and gRPC-Web (HTTP/1.1 and
// h2c), the OpenID Connect discovery document and the access-token JWKS
// under the issuer's path, /healthz, gRPC reflection, Prometheus metrics
// at /metrics, JSON logs carrying the txn on standard error, and
// OpenTelemetry spans when OTEL_EXPORTER_OTLP_ENDPOINT is set. SIGINT or
// SIGTERM stops it gracefully.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr              listen address (TOKENRELAY_ADDR, default 127.0.0.1:8085)
//	-data              data directory (TOKENRELAY_DATA, default .data/identity)
//	-db                SQLite path or postgres:// URL (TOKENRELAY_DATABASE_URL, default sqlite:<data>/identity.db)
//	-schema            PostgreSQL schema (TOKENRELAY_SCHEMA, default identity)
//	-db-max-conns      pool size (TOKENRELAY_DB_MAX_CONNS, default 10)
//	-keys              access-token key ring directory (TOKENRELAY_KEYS, default <data>/keys)
//	-vault             vault key directory (TOKENRELAY_VAULT, default <data>/vault; TOKENRELAY_VAULT_KEYS wins)
//	-issuer            iss of the access tokens, the URL the gateway and OIDC clients know it by
//	                   (TOKENRELAY_ISSUER, default http://<addr>)
//	-audience          aud of the access tokens (TOKENRELAY_AUDIENCE, default tokenrelay-api)
//	-seed-demo-users   create the demo users shopper and admin when missing (TOKENRELAY_SEED_DEMO_USERS, default false)
//	-gateway-jwks      URL[,URL...] of the gateway's JWKS, replicas tried in turn (TOKENRELAY_GATEWAY_JWKS, required)
//	-gateway-issuer    iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-trust-domain      aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-jwks-allow-insecure-http  INSECURE: JWKS over plain http:// to hosts other than loopback, on a trusted
//	                   private network only (TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP, default false)
//	-log-level         DEBUG, INFO, WARN or ERROR (TOKENRELAY_LOG_LEVEL, default INFO)
//	-shutdown-timeout  grace for requests in flight on SIGINT/SIGTERM (TOKENRELAY_SHUTDOWN_TIMEOUT, default 10s)
//	-retention         how long a session (and its refresh tokens) is kept after it expired or was revoked,
//	                   and a login-failure window after it started (TOKENRELAY_RETENTION, default 720h; 0 keeps them)
//	-purge-every       how often this process purges what is past the retention (TOKENRELAY_PURGE_EVERY, default 10m)
package main

import (
	"context"
	"flag"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// Config is identityd's configuration.
type Config struct {
	process.Process
	// Issuer and Audience of the access tokens.
	Issuer, Audience string
	// SeedDemoUsers creates identity.DemoUsers when missing.
	SeedDemoUsers bool
	// Gateway: who signs the transaction tokens, where its keys are, and
	// their aud.
	Gateway process.GatewayTrust
	// Retention is how long ended sessions are kept, and how often they
	// are purged.
	Retention process.Retention
}

func main() {
	cfg := Config{Process: process.Process{Name: identity.Name}}
	cfg.Flags(flag.CommandLine, "127.0.0.1:8085")
	cfg.StoreFlags(flag.CommandLine, identity.Name)
	flag.StringVar(&cfg.Issuer, "issuer", process.Env("TOKENRELAY_ISSUER", ""), "iss of the access tokens, an http(s) `URL` (env TOKENRELAY_ISSUER; default http://<addr>)")
	flag.StringVar(&cfg.Audience, "audience", process.Env("TOKENRELAY_AUDIENCE", identity.DefaultAudience), "aud of the access tokens (env TOKENRELAY_AUDIENCE)")
	flag.BoolVar(&cfg.SeedDemoUsers, "seed-demo-users", process.EnvBool("TOKENRELAY_SEED_DEMO_USERS", false), "create the demo users shopper and admin when missing (env TOKENRELAY_SEED_DEMO_USERS)")
	cfg.Gateway.Flags(flag.CommandLine)
	cfg.Retention.Flags(flag.CommandLine)
	flag.Parse()
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + cfg.Addr
	}
	cfg.Main("identityd", func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg Config) error {
	if err := cfg.Retention.Validate(); err != nil {
		return err
	}
	log := cfg.Logger()
	peers, gw, err := cfg.Gateway.Peers(log)
	if err != nil {
		return err
	}
	defer peers.Close()
	st, err := cfg.OpenState(ctx)
	if err != nil {
		return err
	}
	defer st.DB.Close()
	ring, vk, db := st.Ring, st.Vault, st.DB
	var users []identity.User
	if cfg.SeedDemoUsers {
		users = identity.DemoUsers()
	}
	svc, err := identity.New(ctx, identity.Config{
		DB: db, Vault: vk, Logger: log, Keys: ring, Issuer: cfg.Issuer, Audience: cfg.Audience,
		Gateway: gw, TrustDomain: cfg.Gateway.TrustDomain, Users: users,
	})
	if err != nil {
		return err
	}
	defer svc.Close()
	tel, stopTelemetry, err := cfg.Telemetry(ctx, true)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	m := metrics.New()
	return cfg.ServeRPC(ctx, log, process.RPC{
		Register: svc.Register, Reflect: []string{identityv1connect.IdentityServiceName},
		Telemetry: tel, Metrics: m, Peers: peers,
	}, cfg.Retention.Task(log, m, identity.Name, svc.Purge))
}
