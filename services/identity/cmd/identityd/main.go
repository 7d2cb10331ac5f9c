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
//	-gateway-jwks      URL of the gateway's JWKS (TOKENRELAY_GATEWAY_JWKS, required)
//	-gateway-issuer    iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-trust-domain      aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-log-level         DEBUG, INFO, WARN or ERROR (TOKENRELAY_LOG_LEVEL, default INFO)
//	-shutdown-timeout  grace for requests in flight on SIGINT/SIGTERM (TOKENRELAY_SHUTDOWN_TIMEOUT, default 10s)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// Config is identityd's configuration.
type Config struct {
	server.Process
	// Issuer and Audience of the access tokens.
	Issuer, Audience string
	// SeedDemoUsers creates identity.DemoUsers when missing.
	SeedDemoUsers bool
	// GatewayIssuer and GatewayJWKS: who signs the transaction tokens, and
	// where its keys are.
	GatewayIssuer, GatewayJWKS string
	// TrustDomain is the aud of the transaction tokens.
	TrustDomain string
}

func main() {
	cfg := Config{Process: server.Process{Name: identity.Name}}
	cfg.Flags(flag.CommandLine, "127.0.0.1:8085")
	cfg.StoreFlags(flag.CommandLine, identity.Name)
	flag.StringVar(&cfg.Issuer, "issuer", server.Env("TOKENRELAY_ISSUER", ""), "iss of the access tokens, an http(s) `URL` (env TOKENRELAY_ISSUER; default http://<addr>)")
	flag.StringVar(&cfg.Audience, "audience", server.Env("TOKENRELAY_AUDIENCE", identity.DefaultAudience), "aud of the access tokens (env TOKENRELAY_AUDIENCE)")
	flag.BoolVar(&cfg.SeedDemoUsers, "seed-demo-users", server.EnvBool("TOKENRELAY_SEED_DEMO_USERS", false), "create the demo users shopper and admin when missing (env TOKENRELAY_SEED_DEMO_USERS)")
	flag.StringVar(&cfg.GatewayIssuer, "gateway-issuer", server.Env("TOKENRELAY_GATEWAY_ISSUER", "gateway"), "iss of the transaction tokens (env TOKENRELAY_GATEWAY_ISSUER)")
	flag.StringVar(&cfg.GatewayJWKS, "gateway-jwks", server.Env("TOKENRELAY_GATEWAY_JWKS", ""), "`URL` of the gateway's JWKS (env TOKENRELAY_GATEWAY_JWKS; required)")
	flag.StringVar(&cfg.TrustDomain, "trust-domain", server.Env("TOKENRELAY_TRUST_DOMAIN", "tokenrelay"), "aud of the transaction tokens (env TOKENRELAY_TRUST_DOMAIN)")
	flag.Parse()
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + cfg.Addr
	}
	log := cfg.Logger()
	ctx, stop := server.SignalContext()
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Error("identityd stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config) error {
	log := cfg.Logger()
	peers, err := server.NewPeers(log)
	if err != nil {
		return err
	}
	defer peers.Close()
	gw, err := peers.Add(cfg.GatewayIssuer, cfg.GatewayJWKS)
	if err != nil {
		return fmt.Errorf("-gateway-jwks: %w", err)
	}
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
		Gateway: capability.Peer{Issuer: cfg.GatewayIssuer, Keys: gw}, TrustDomain: cfg.TrustDomain, Users: users,
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
	m := server.NewMetrics()
	m.JWKSFetches(peers.Fetches)
	mux := server.Mux(m)
	svc.Register(mux, tel.HandlerOption(), m.HandlerOption())
	server.MountReflection(mux, []string{identityv1connect.IdentityServiceName}, m.HandlerOption())
	return cfg.Serve(ctx, log, mux, peers.Run)
}
