// Command pointsd runs the Points service alone, one process of the
// scaled-out deployment (see the README's "Scaled out"): PointsService
// and its CapabilityService over Connect, gRPC and gRPC-Web (HTTP/1.1 and
// h2c), /healthz, its JWKS at /.well-known/jwks.json, gRPC reflection,
// Prometheus metrics at /metrics, JSON logs carrying the txn on standard
// error, and OpenTelemetry spans when OTEL_EXPORTER_OTLP_ENDPOINT is set.
// SIGINT or SIGTERM stops it gracefully.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr              listen address (TOKENRELAY_ADDR, default 127.0.0.1:8082)
//	-data              data directory (TOKENRELAY_DATA, default .data/points)
//	-db                SQLite path or postgres:// URL (TOKENRELAY_DATABASE_URL, default sqlite:<data>/points.db)
//	-schema            PostgreSQL schema (TOKENRELAY_SCHEMA, default points)
//	-db-max-conns      pool size (TOKENRELAY_DB_MAX_CONNS, default 10)
//	-keys              signing key ring directory (TOKENRELAY_KEYS, default <data>/keys)
//	-vault             vault key directory (TOKENRELAY_VAULT, default <data>/vault; TOKENRELAY_VAULT_KEYS wins)
//	-gateway-jwks      URL of the gateway's JWKS (TOKENRELAY_GATEWAY_JWKS, required)
//	-gateway-issuer    iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-order-processing-jwks  URL of OrderProcessing's JWKS (TOKENRELAY_ORDER_PROCESSING_JWKS, required)
//	-trust-domain      aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-log-level         DEBUG, INFO, WARN or ERROR (TOKENRELAY_LOG_LEVEL, default INFO)
//	-shutdown-timeout  grace for requests in flight on SIGINT/SIGTERM (TOKENRELAY_SHUTDOWN_TIMEOUT, default 10s)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/services/points"
)

// Config is pointsd's configuration.
type Config struct {
	server.Process
	// GatewayIssuer and GatewayJWKS: who signs the transaction tokens, and
	// where its keys are.
	GatewayIssuer, GatewayJWKS string
	// OrderProcessingJWKS is where OrderProcessing's keys (checkout and
	// workload tokens) are.
	OrderProcessingJWKS string
	// TrustDomain is the aud of the transaction tokens.
	TrustDomain string
}

func main() {
	cfg := Config{Process: server.Process{Name: points.Name}}
	cfg.Flags(flag.CommandLine, "127.0.0.1:8082")
	cfg.StoreFlags(flag.CommandLine, points.Name)
	flag.StringVar(&cfg.GatewayIssuer, "gateway-issuer", server.Env("TOKENRELAY_GATEWAY_ISSUER", "gateway"), "iss of the transaction tokens (env TOKENRELAY_GATEWAY_ISSUER)")
	flag.StringVar(&cfg.GatewayJWKS, "gateway-jwks", server.Env("TOKENRELAY_GATEWAY_JWKS", ""), "`URL` of the gateway's JWKS (env TOKENRELAY_GATEWAY_JWKS; required)")
	flag.StringVar(&cfg.OrderProcessingJWKS, "order-processing-jwks", server.Env("TOKENRELAY_ORDER_PROCESSING_JWKS", ""), "`URL` of OrderProcessing's JWKS (env TOKENRELAY_ORDER_PROCESSING_JWKS; required)")
	flag.StringVar(&cfg.TrustDomain, "trust-domain", server.Env("TOKENRELAY_TRUST_DOMAIN", "tokenrelay"), "aud of the transaction tokens (env TOKENRELAY_TRUST_DOMAIN)")
	flag.Parse()
	log := cfg.Logger()
	ctx, stop := server.SignalContext()
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Error("pointsd stopped", "err", err)
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
	op, err := peers.Add(capability.Audience, cfg.OrderProcessingJWKS)
	if err != nil {
		return fmt.Errorf("-order-processing-jwks: %w", err)
	}
	ring, err := cfg.Ring()
	if err != nil {
		return err
	}
	vk, err := cfg.Vault()
	if err != nil {
		return err
	}
	db, err := cfg.OpenDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := points.New(ctx, points.Config{DB: db, Vault: vk, Logger: log, Trust: capability.Trust{
		Keys: ring, Gateway: capability.Peer{Issuer: cfg.GatewayIssuer, Keys: gw}, TrustDomain: cfg.TrustDomain,
		OrderProcessing: capability.Peer{Issuer: capability.Audience, Keys: op},
	}})
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
	server.MountReflection(mux, []string{pointsv1connect.PointsServiceName, capabilityv1connect.CapabilityServiceName}, m.HandlerOption())
	return cfg.Serve(ctx, log, mux, peers.Run)
}
