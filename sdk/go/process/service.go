package process

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
)

// Main runs run with a context cancelled on SIGINT or SIGTERM
// (server.SignalContext) and, when run fails, logs "<command> stopped"
// with the error and exits with status 1: the end of every service
// binary's main. Before that, an environment variable that a flag's
// default could not take (CheckEnv: TOKENRELAY_SHUTDOWN_TIMEOUT=banana)
// is logged as "<command> not started", naming the variable, and the
// process exits with status 2, as for an invalid flag: it never runs on a
// default the operator did not choose.
func (p Process) Main(command string, run func(ctx context.Context) error) {
	if err := CheckEnv(); err != nil {
		p.Logger().Error(command+" not started", "err", err)
		os.Exit(2)
	}
	ctx, stop := server.SignalContext()
	defer stop()
	if err := run(ctx); err != nil {
		p.Logger().Error(command+" stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// GatewayTrust is the configuration of a process behind the gateway: who
// signs the transaction tokens it accepts, where the signer's keys are, and
// the audience the tokens carry.
type GatewayTrust struct {
	// Issuer is the iss of the transaction tokens (-gateway-issuer,
	// TOKENRELAY_GATEWAY_ISSUER, default gateway).
	Issuer string
	// JWKS is the URL of the gateway's JWKS, or a comma-separated list of
	// URLs of the same set (its replicas), tried in turn (-gateway-jwks,
	// TOKENRELAY_GATEWAY_JWKS, required).
	JWKS string
	// TrustDomain is the aud of the transaction tokens (-trust-domain,
	// TOKENRELAY_TRUST_DOMAIN, default tokenrelay).
	TrustDomain string
	// JWKSConfig configures the fetches of every peer's keys
	// (-jwks-allow-insecure-http).
	JWKSConfig
}

// Flags registers -gateway-issuer, -gateway-jwks, -trust-domain and
// -jwks-allow-insecure-http.
func (g *GatewayTrust) Flags(fs *flag.FlagSet) {
	fs.StringVar(&g.Issuer, "gateway-issuer", Env("TOKENRELAY_GATEWAY_ISSUER", "gateway"), "iss of the transaction tokens (env TOKENRELAY_GATEWAY_ISSUER)")
	fs.StringVar(&g.JWKS, "gateway-jwks", Env("TOKENRELAY_GATEWAY_JWKS", ""), "`URL[,URL...]` of the gateway's JWKS, replicas tried in turn (env TOKENRELAY_GATEWAY_JWKS; required)")
	fs.StringVar(&g.TrustDomain, "trust-domain", Env("TOKENRELAY_TRUST_DOMAIN", "tokenrelay"), "aud of the transaction tokens (env TOKENRELAY_TRUST_DOMAIN)")
	g.JWKSConfig.Flags(fs)
}

// Peers returns a new JWKS cache of the process's peers (NewPeers with
// g.JWKSConfig, logging to log) that trusts the gateway's keys, and the
// gateway as a capability.Peer whose Loaded is the readiness check of its
// key set (Peers.Loaded; health.GatewayKeys). Close the Peers when done.
func (g GatewayTrust) Peers(log *slog.Logger) (*Peers, capability.Peer, error) {
	peers, err := NewPeers(log, g.JWKSConfig)
	if err != nil {
		return nil, capability.Peer{}, err
	}
	gw, err := peers.Add(g.Issuer, g.JWKS)
	if err != nil {
		peers.Close()
		return nil, capability.Peer{}, fmt.Errorf("-gateway-jwks: %w", err)
	}
	issuer := g.Issuer
	return peers, capability.Peer{Issuer: issuer, Keys: gw, Loaded: func(ctx context.Context) error {
		return peers.Loaded(ctx, issuer)
	}}, nil
}

// RPC is what ServeRPC serves: a service's handlers, traced and counted.
type RPC struct {
	// Register adds the service's handlers to mux with opts (the Register
	// method of a service's public face).
	Register func(mux *http.ServeMux, opts ...connect.HandlerOption)
	// Reflect names the services gRPC reflection lists.
	Reflect []string
	// Telemetry traces the handlers (Process.Telemetry).
	Telemetry *telemetry.Telemetry
	// Metrics counts the handlers and the peers' key fetches and refused
	// answers (ExportJWKS), and is served at metrics.Path.
	Metrics *metrics.Registry
	// Peers' keys are refreshed beside the server.
	Peers *Peers
}

// ServeRPC serves rpc until ctx ends (Serve): the service's handlers with
// rpc.Telemetry's and rpc.Metrics' handler options, gRPC reflection for
// rpc.Reflect and the metrics beside them, while rpc.Peers' keys are
// refreshed and tasks run.
func (p Process) ServeRPC(ctx context.Context, log *slog.Logger, rpc RPC, tasks ...server.Task) error {
	m := rpc.Metrics
	ExportJWKS(m, rpc.Peers)
	mux := m.Mux()
	rpc.Register(mux, rpc.Telemetry.HandlerOption(), m.HandlerOption())
	server.MountReflection(mux, rpc.Reflect, m.HandlerOption())
	return p.Serve(ctx, log, mux, append([]server.Task{rpc.Peers.Run}, tasks...)...)
}
