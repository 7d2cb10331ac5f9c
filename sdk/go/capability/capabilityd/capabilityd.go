// Package capabilityd runs one domain service (Coupons, Points, Payments,
// or a new one) as its own process of the scaled-out deployment: the flags
// and environment every domain shares, the trust of the gateway's and
// OrderProcessing's keys by JWKS URL, the store and vault, and the server
// with health, JWKS, gRPC reflection, Prometheus metrics, tracing and
// graceful shutdown. A domain's main is a Domain and a call to Main.
//
// Flags, each defaulting to its environment variable when set (plus those of
// server.Process: -addr, -data, -db, -schema, -db-max-conns, -keys, -vault,
// -log-level, -shutdown-timeout):
//
//	-gateway-jwks           URL of the gateway's JWKS (TOKENRELAY_GATEWAY_JWKS, required)
//	-gateway-issuer         iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-order-processing-jwks  URL of OrderProcessing's JWKS (TOKENRELAY_ORDER_PROCESSING_JWKS, required)
//	-trust-domain           aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
package capabilityd

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Service is a domain's public face.
type Service interface {
	Register(mux *http.ServeMux, opts ...connect.HandlerOption)
	Close()
}

// Deps is what Build gets: everything the domain's Config needs.
type Deps struct {
	DB     *sqldb.DB
	Vault  *vault.Keyring
	Logger *slog.Logger
	Trust  capability.Trust
	// Process opens more databases if the domain needs them.
	Process *server.Process
}

// Domain describes one domain's process.
type Domain struct {
	// Name is the domain's issuer, workload and default schema name.
	Name string
	// Addr is the default listen address.
	Addr string
	// Service is the domain's own service name, for reflection (next to
	// CapabilityService).
	Service string
	// Flags, when set, adds the domain's own flags.
	Flags func(*flag.FlagSet)
	// Build constructs the service; Main closes it.
	Build func(ctx context.Context, d Deps) (Service, error)
}

// Config is the shared configuration, filled from flags.
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

// Main parses the command line into a Config, runs the domain until
// SIGINT or SIGTERM, and exits non-zero on failure.
func Main(d Domain) {
	cfg := Config{Process: server.Process{Name: d.Name}}
	fs := flag.CommandLine
	cfg.Flags(fs, d.Addr)
	cfg.StoreFlags(fs, d.Name)
	fs.StringVar(&cfg.GatewayIssuer, "gateway-issuer", server.Env("TOKENRELAY_GATEWAY_ISSUER", "gateway"), "iss of the transaction tokens (env TOKENRELAY_GATEWAY_ISSUER)")
	fs.StringVar(&cfg.GatewayJWKS, "gateway-jwks", server.Env("TOKENRELAY_GATEWAY_JWKS", ""), "`URL` of the gateway's JWKS (env TOKENRELAY_GATEWAY_JWKS; required)")
	fs.StringVar(&cfg.OrderProcessingJWKS, "order-processing-jwks", server.Env("TOKENRELAY_ORDER_PROCESSING_JWKS", ""), "`URL` of OrderProcessing's JWKS (env TOKENRELAY_ORDER_PROCESSING_JWKS; required)")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", server.Env("TOKENRELAY_TRUST_DOMAIN", "tokenrelay"), "aud of the transaction tokens (env TOKENRELAY_TRUST_DOMAIN)")
	if d.Flags != nil {
		d.Flags(fs)
	}
	flag.Parse()
	ctx, stop := server.SignalContext()
	defer stop()
	if err := Run(ctx, d, cfg); err != nil {
		cfg.Logger().Error(d.Name+"d stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// Run runs the domain with cfg until ctx ends.
func Run(ctx context.Context, d Domain, cfg Config) error {
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
	st, err := cfg.OpenState(ctx)
	if err != nil {
		return err
	}
	defer st.DB.Close()
	ring, vk, db := st.Ring, st.Vault, st.DB
	svc, err := d.Build(ctx, Deps{DB: db, Vault: vk, Logger: log, Process: &cfg.Process, Trust: capability.Trust{
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
	server.MountReflection(mux, []string{d.Service, capabilityv1connect.CapabilityServiceName}, m.HandlerOption())
	return cfg.Serve(ctx, log, mux, peers.Run)
}
