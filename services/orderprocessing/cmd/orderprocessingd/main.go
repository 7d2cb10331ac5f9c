// Command orderprocessingd runs OrderProcessing alone, one process of the
// scaled-out deployment (see the README's "Scaled out"), and its saga
// runner: OrderProcessingService over Connect, gRPC and gRPC-Web (HTTP/1.1
// and h2c), /healthz, its JWKS (checkout and workload tokens) at
// /.well-known/jwks.json, gRPC reflection, Prometheus metrics at /metrics,
// JSON logs carrying the txn on standard error, and OpenTelemetry spans
// when OTEL_EXPORTER_OTLP_ENDPOINT is set. SIGINT or SIGTERM stops it
// gracefully; sagas in flight are resumed by another replica, or by this
// one at its next start, once their lease expires.
//
// Several replicas may run against one database: they must share the
// database (URL and schema), the key ring directory (-keys) and the vault
// keys (-vault or TOKENRELAY_VAULT_KEYS). Each order's saga is leased to
// one replica at a time; one-time use of every token is enforced by the
// database, so concurrent replays through different replicas make one
// order.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr                listen address (TOKENRELAY_ADDR, default 127.0.0.1:8084)
//	-data                data directory (TOKENRELAY_DATA, default .data/order-processing)
//	-db                  SQLite path or postgres:// URL (TOKENRELAY_DATABASE_URL, default sqlite:<data>/order-processing.db)
//	-schema              PostgreSQL schema (TOKENRELAY_SCHEMA, default orderprocessing)
//	-db-max-conns        pool size (TOKENRELAY_DB_MAX_CONNS, default 10)
//	-keys                signing key ring directory, shared by replicas (TOKENRELAY_KEYS, default <data>/keys)
//	-vault               vault key directory, shared by replicas (TOKENRELAY_VAULT, default <data>/vault; TOKENRELAY_VAULT_KEYS wins)
//	-routes              routing table, a JSON file (TOKENRELAY_ROUTES, required; see orderprocessing.ParseRoutes):
//	                     each route's "jwks" is the URL of its issuer's keys, or a list of URLs of the same
//	                     set (the issuer's replicas), tried in turn
//	-gateway-jwks        URL[,URL...] of the gateway's JWKS (TOKENRELAY_GATEWAY_JWKS, required)
//	-jwks-allow-insecure-http  INSECURE: JWKS over plain http:// to hosts other than loopback, on a trusted
//	                     private network only (TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP, default false)
//	-gateway-issuer      iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-trust-domain        aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-txn-token-url       base URL of the gateway's Txn-Token Service (the gateway's own URL), where the saga
//	                     asks, for each Exercise and Compensate, for a transaction token continuing the
//	                     order's transaction (TOKENRELAY_TXN_TOKEN_URL, default none: the saga's calls carry
//	                     no transaction token, and the domains log them without the order's txn)
//	-checkout-ttl        how long a checkout stays open (TOKENRELAY_CHECKOUT_TTL, default 30m, at most 1h)
//	-saga-lease          how long a replica's claim on an order lasts (TOKENRELAY_SAGA_LEASE, default 15s)
//	-saga-call-timeout   bound of one Exercise or Compensate call (TOKENRELAY_SAGA_CALL_TIMEOUT, default 5s)
//	-saga-recover-every  how often unfinished orders with free leases are looked for (TOKENRELAY_SAGA_RECOVER_EVERY, default 2s)
//	-watch-per-user      WatchOrder streams one user may hold open on this replica; beyond, resource_exhausted
//	                     (TOKENRELAY_WATCH_PER_USER, default 8; negative: no cap)
//	-watch-total         WatchOrder streams of all users on this replica (TOKENRELAY_WATCH_TOTAL, default 1024; negative: no cap)
//	-log-level           DEBUG, INFO, WARN or ERROR (TOKENRELAY_LOG_LEVEL, default INFO)
//	-shutdown-timeout    grace for requests in flight on SIGINT/SIGTERM (TOKENRELAY_SHUTDOWN_TIMEOUT, default 10s)
//	-retention           how long a checkout no order was placed for is kept after it expired
//	                     (TOKENRELAY_RETENTION, default 720h, 30 days; 0 keeps them)
//	-sealed-token-retention  how long an order COMPLETED or FAILED keeps its sealed confirmation tokens
//	                     (TOKENRELAY_SEALED_TOKEN_RETENTION, default 24h; 0 keeps them)
//	-order-retention     how long an order COMPLETED or FAILED is kept, with its steps and checkout
//	                     (TOKENRELAY_ORDER_RETENTION, default 0: every order is kept)
//	-purge-every         how often this replica purges (TOKENRELAY_PURGE_EVERY, default 10m); consumed jtis
//	                     are pruned at each purge once their token's exp plus the leeway has passed
//
// The purge (orderprocessing.Service.Purge) runs in every replica; replicas
// purging at once is safe. Orders NEEDS_OPERATOR are never purged.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

// Config is orderprocessingd's configuration.
type Config struct {
	process.Process
	// RoutesFile is the routing table (JSON).
	RoutesFile string
	// Gateway: who signs the transaction tokens, where its keys are, and
	// their aud.
	Gateway process.GatewayTrust
	// TxnTokenURL is the Txn-Token Service's base URL ("": none).
	TxnTokenURL string
	// CheckoutTTL is how long a checkout stays open.
	CheckoutTTL time.Duration
	// Saga tunes the saga runner.
	Saga orderprocessing.SagaConfig
	// WatchPerUser and WatchTotal cap the WatchOrder streams (see
	// orderprocessing.Config).
	WatchPerUser, WatchTotal int
	// Retention governs unplaced checkouts and how often the purge runs
	// (-retention, -purge-every); SealedTokenRetention and OrderRetention
	// the finished orders (0 keeps).
	Retention                            process.Retention
	SealedTokenRetention, OrderRetention time.Duration
}

func main() {
	cfg := Config{Process: process.Process{Name: orderprocessing.Name}}
	cfg.Flags(flag.CommandLine, "127.0.0.1:8084")
	cfg.StoreFlags(flag.CommandLine, "orderprocessing")
	flag.StringVar(&cfg.RoutesFile, "routes", process.Env("TOKENRELAY_ROUTES", ""), "routing table, a JSON `file` (env TOKENRELAY_ROUTES; required)")
	cfg.Gateway.Flags(flag.CommandLine)
	flag.StringVar(&cfg.TxnTokenURL, "txn-token-url", process.Env("TOKENRELAY_TXN_TOKEN_URL", ""),
		"base `URL` of the gateway's Txn-Token Service, for the saga's transaction tokens (env TOKENRELAY_TXN_TOKEN_URL; default none)")
	flag.DurationVar(&cfg.CheckoutTTL, "checkout-ttl", process.EnvDuration("TOKENRELAY_CHECKOUT_TTL", 30*time.Minute), "how long a checkout stays open, at most 1h (env TOKENRELAY_CHECKOUT_TTL)")
	flag.DurationVar(&cfg.Saga.Lease, "saga-lease", process.EnvDuration("TOKENRELAY_SAGA_LEASE", 15*time.Second), "how long a replica's claim on an order lasts (env TOKENRELAY_SAGA_LEASE)")
	flag.DurationVar(&cfg.Saga.CallTimeout, "saga-call-timeout", process.EnvDuration("TOKENRELAY_SAGA_CALL_TIMEOUT", 5*time.Second), "bound of one Exercise or Compensate call (env TOKENRELAY_SAGA_CALL_TIMEOUT)")
	flag.DurationVar(&cfg.Saga.RecoverEvery, "saga-recover-every", process.EnvDuration("TOKENRELAY_SAGA_RECOVER_EVERY", 2*time.Second), "how often unfinished orders with free leases are looked for (env TOKENRELAY_SAGA_RECOVER_EVERY)")
	flag.IntVar(&cfg.WatchPerUser, "watch-per-user", process.EnvInt("TOKENRELAY_WATCH_PER_USER", orderprocessing.DefaultWatchPerUser), "WatchOrder streams one user may hold open on this replica, beyond which resource_exhausted; negative: no cap (env TOKENRELAY_WATCH_PER_USER)")
	flag.IntVar(&cfg.WatchTotal, "watch-total", process.EnvInt("TOKENRELAY_WATCH_TOTAL", orderprocessing.DefaultWatchTotal), "WatchOrder streams of all users on this replica, beyond which resource_exhausted; negative: no cap (env TOKENRELAY_WATCH_TOTAL)")
	cfg.Retention.Flags(flag.CommandLine)
	flag.DurationVar(&cfg.SealedTokenRetention, "sealed-token-retention", process.EnvDuration("TOKENRELAY_SEALED_TOKEN_RETENTION", orderprocessing.DefaultSealedTokenRetention),
		"how long an order COMPLETED or FAILED keeps its sealed confirmation tokens; 0 keeps them (env TOKENRELAY_SEALED_TOKEN_RETENTION)")
	flag.DurationVar(&cfg.OrderRetention, "order-retention", process.EnvDuration("TOKENRELAY_ORDER_RETENTION", 0),
		"how long an order COMPLETED or FAILED is kept, with its steps and checkout; 0 keeps every order (env TOKENRELAY_ORDER_RETENTION)")
	flag.Parse()
	cfg.Main("orderprocessingd", func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg Config) error {
	if err := validateRetention(cfg); err != nil {
		return err
	}
	log := cfg.Logger()
	if cfg.RoutesFile == "" {
		return errors.New("-routes: a routing table is required")
	}
	routes, err := readRoutes(cfg.RoutesFile)
	if err != nil {
		return err
	}
	peers, gw, err := cfg.Gateway.Peers(log)
	if err != nil {
		return err
	}
	defer peers.Close()
	issuerKeys := map[string]keys.Source{}
	for _, r := range routes {
		if _, ok := issuerKeys[r.Issuer]; ok {
			continue
		}
		if issuerKeys[r.Issuer], err = peers.Add(r.Issuer, r.JWKS); err != nil {
			return fmt.Errorf("-routes: issuer %s: %w", r.Issuer, err)
		}
	}
	st, err := cfg.OpenState(ctx)
	if err != nil {
		return err
	}
	defer st.DB.Close()
	ring, vk, db := st.Ring, st.Vault, st.DB
	tel, stopTelemetry, err := cfg.Telemetry(ctx, true)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	svc, err := orderprocessing.New(ctx, orderprocessing.Config{
		DB: db, Keys: ring, Vault: vk, Gateway: gw, TrustDomain: cfg.Gateway.TrustDomain,
		Routes: routes, IssuerKeys: issuerKeys, HTTPClient: &http.Client{Transport: server.H2Transport()}, ClientOptions: []connect.ClientOption{tel.ClientOption()},
		TxnTokenURL: cfg.TxnTokenURL, TracerProvider: tel.TracerProvider(),
		Logger: log, CheckoutTTL: cfg.CheckoutTTL, Saga: cfg.Saga, WatchPerUser: cfg.WatchPerUser, WatchTotal: cfg.WatchTotal,
		SealedTokenRetention: keepAsNegative(cfg.SealedTokenRetention), OrderRetention: cfg.OrderRetention,
	})
	if err != nil {
		return err
	}
	defer svc.Close()
	m := metrics.New()
	svc.Export(m) // saga outcomes, refused compensations
	return cfg.ServeRPC(ctx, log, process.RPC{
		Register: svc.Register, Reflect: []string{orderprocessingv1connect.OrderProcessingServiceName},
		Telemetry: tel, Metrics: m, Peers: peers,
	}, svc.Run, cfg.Retention.Task(log, m, orderprocessing.Name, svc.Purge))
}

// validateRetention checks the retention flags: each 0 (keep) or at least
// process.MinRetention, and -purge-every.
func validateRetention(cfg Config) error {
	if err := cfg.Retention.Validate(); err != nil {
		return err
	}
	if err := process.ValidateRetention("-sealed-token-retention", cfg.SealedTokenRetention, cfg.Retention.Every); err != nil {
		return err
	}
	return process.ValidateRetention("-order-retention", cfg.OrderRetention, cfg.Retention.Every)
}

// keepAsNegative maps a flag's 0 (keep) to orderprocessing.Config's
// negative (keep; its 0 is the default).
func keepAsNegative(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// maxRoutesFile is the largest routing table read, as
// orderprocessing.ParseRoutes reads.
const maxRoutesFile = 1 << 20

// readRoutes reads the routing table at path (orderprocessing.ParseRoutes),
// where a route's "jwks" may be a URL or a list of URLs of its issuer's set
// (replicas sharing a key ring, or a shared endpoint and the replicas): a
// list is joined into the comma-separated form process.Peers.Add takes.
func readRoutes(path string) ([]orderprocessing.Route, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRoutesFile))
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	if data, err = joinJWKSLists(data); err != nil {
		return nil, fmt.Errorf("-routes: %w", err)
	}
	return orderprocessing.ParseRoutes(bytes.NewReader(data))
}

// joinJWKSLists rewrites every route's "jwks" list of URLs as one
// comma-separated string. Anything else is left as it is, for
// orderprocessing.ParseRoutes to validate.
func joinJWKSLists(data []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	var routes []map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || json.Unmarshal(doc["routes"], &routes) != nil {
		return data, nil
	}
	changed := false
	for i, r := range routes {
		raw := bytes.TrimSpace(r["jwks"])
		if len(raw) == 0 || raw[0] != '[' {
			continue
		}
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("route %d: jwks: want a URL or a list of URLs", i)
		}
		for _, u := range list {
			if strings.Contains(u, ",") {
				return nil, fmt.Errorf("route %d: jwks: a URL in a list contains a comma; percent-encode it", i)
			}
		}
		r["jwks"], _ = json.Marshal(strings.Join(list, ","))
		changed = true
	}
	if !changed {
		return data, nil
	}
	doc["routes"], _ = json.Marshal(routes)
	return json.Marshal(doc)
}
