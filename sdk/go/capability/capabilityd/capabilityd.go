// Package capabilityd runs one domain service (Coupons, Points, Payments,
// or a new one) as its own process of the scaled-out deployment: the flags
// and environment every domain shares, the trust of the gateway's and
// OrderProcessing's keys by JWKS URL, the store and vault, and the server
// with health, JWKS, gRPC reflection, Prometheus metrics, tracing and
// graceful shutdown. A domain's main is a Domain and a call to Main.
//
// Its rule: it is process plumbing, the one place where a domain's public
// face meets flags, the process's state and the HTTP server. It may import
// anything (process, server, metrics, sqldb, the generated reflection
// names); only a domain's cmd main imports it, never a library or a
// domain's face (the embedded deployment wires the same faces itself).
//
// Flags, each defaulting to its environment variable when set (plus those of
// process.Process: -addr, -data, -db, -schema, -db-max-conns, -keys, -vault,
// -log-level, -shutdown-timeout):
//
//	-gateway-jwks           URL[,URL...] of the gateway's JWKS, replicas tried in turn (TOKENRELAY_GATEWAY_JWKS, required)
//	-gateway-issuer         iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-order-processing-jwks  URL[,URL...] of OrderProcessing's JWKS: give every replica, tried in turn
//	                        (TOKENRELAY_ORDER_PROCESSING_JWKS, required)
//	-trust-domain           aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-jwks-allow-insecure-http  INSECURE: JWKS over plain http:// to hosts other than loopback, on a trusted
//	                        private network only (TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP, default false)
//	-retention              how long a token's confirmation and exercise records are kept after the token
//	                        expired and its exercise last changed (TOKENRELAY_RETENTION, default 720h; 0 keeps them)
//	-purge-every            how often this process purges them (TOKENRELAY_PURGE_EVERY, default 10m)
//	-seal-constraints       seal the constraints of the confirmation tokens it issues, for itself alone
//	                        (TOKENRELAY_SEAL_CONSTRAINTS; default the domain's: true for payments, else false)
//	-seal-alg               dir or A256KW, the JWE key management of sealed constraints
//	                        (TOKENRELAY_SEAL_ALG, default dir)
//
// A domain whose Service has a Purge method (every domain's face has:
// capabilitysql.Purge) gets it run every -purge-every beside the server
// (process.Retention.Task), its rows counted as
// tokenrelay_purged_rows_total{service, table} on /metrics. Replicas purge
// at once safely.
package capabilityd

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Service is a domain's public face.
type Service interface {
	Register(mux *http.ServeMux, opts ...connect.HandlerOption)
	Close()
}

// Purger is a Service that purges the records past their retention (every
// domain's face: it runs capabilitysql.Purge). Run runs its Purge as a
// background task.
type Purger interface {
	Purge(ctx context.Context, now time.Time, retention time.Duration) (map[string]int64, error)
}

// Deps is what Build gets: everything the domain's Config needs.
type Deps struct {
	DB     *sqldb.DB
	Vault  *vault.Keyring
	Logger *slog.Logger
	Trust  capability.Trust
	// SealConstraints and SealAlgorithm are -seal-constraints and -seal-alg
	// (capabilityrpc.Config).
	SealConstraints bool
	SealAlgorithm   string
	// Process opens more databases if the domain needs them.
	Process *process.Process
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
	// SealConstraints is the default of -seal-constraints: whether the
	// domain seals its tokens' constraints (package sealed).
	SealConstraints bool
	// Flags, when set, adds the domain's own flags.
	Flags func(*flag.FlagSet)
	// Build constructs the service; Main closes it.
	Build func(ctx context.Context, d Deps) (Service, error)
}

// Config is the shared configuration, filled from flags.
type Config struct {
	process.Process
	// Gateway: who signs the transaction tokens, where its keys are, and
	// their aud.
	Gateway process.GatewayTrust
	// OrderProcessingJWKS is where OrderProcessing's keys (checkout and
	// workload tokens) are: a comma-separated list of URLs of the one set
	// its replicas share (process.Peers.Add).
	OrderProcessingJWKS string
	// Retention is how long the domain keeps its tokens' records, and how
	// often it purges them (-retention, -purge-every).
	Retention process.Retention
	// SealConstraints and SealAlgorithm are -seal-constraints and -seal-alg.
	SealConstraints bool
	SealAlgorithm   string
}

// Main parses the command line into a Config, runs the domain until
// SIGINT or SIGTERM, and exits non-zero on failure.
func Main(d Domain) {
	cfg := Config{Process: process.Process{Name: d.Name}}
	fs := flag.CommandLine
	cfg.Flags(fs, d.Addr)
	cfg.StoreFlags(fs, d.Name)
	cfg.Gateway.Flags(fs)
	fs.StringVar(&cfg.OrderProcessingJWKS, "order-processing-jwks", process.Env("TOKENRELAY_ORDER_PROCESSING_JWKS", ""), "`URL[,URL...]` of OrderProcessing's JWKS, every replica, tried in turn (env TOKENRELAY_ORDER_PROCESSING_JWKS; required)")
	cfg.Retention.Flags(fs)
	fs.BoolVar(&cfg.SealConstraints, "seal-constraints", process.EnvBool("TOKENRELAY_SEAL_CONSTRAINTS", d.SealConstraints),
		"seal the constraints of the confirmation tokens this domain issues, for itself alone (env TOKENRELAY_SEAL_CONSTRAINTS)")
	fs.StringVar(&cfg.SealAlgorithm, "seal-alg", process.Env("TOKENRELAY_SEAL_ALG", "dir"),
		"`dir or A256KW`: the JWE key management of sealed constraints (env TOKENRELAY_SEAL_ALG)")
	if d.Flags != nil {
		d.Flags(fs)
	}
	flag.Parse()
	cfg.Main(d.Name+"d", func(ctx context.Context) error { return Run(ctx, d, cfg) })
}

// Run runs the domain with cfg until ctx ends.
func Run(ctx context.Context, d Domain, cfg Config) error {
	if err := cfg.Retention.Validate(); err != nil {
		return err
	}
	log := cfg.Logger()
	peers, gw, err := cfg.Gateway.Peers(log)
	if err != nil {
		return err
	}
	defer peers.Close()
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
	svc, err := d.Build(ctx, Deps{DB: db, Vault: vk, Logger: log, Process: &cfg.Process,
		SealConstraints: cfg.SealConstraints, SealAlgorithm: cfg.SealAlgorithm, Trust: capability.Trust{
			Keys: ring, Gateway: gw, TrustDomain: cfg.Gateway.TrustDomain,
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
	m := metrics.New()
	var tasks []server.Task
	if p, ok := svc.(Purger); ok {
		tasks = append(tasks, cfg.Retention.Task(log, m, d.Name, p.Purge))
	}
	return cfg.ServeRPC(ctx, log, process.RPC{
		Register: svc.Register, Reflect: []string{d.Service, capabilityv1connect.CapabilityServiceName},
		Telemetry: tel, Metrics: m, Peers: peers,
	}, tasks...)
}
