// Command couponsd runs the Coupons service alone, one process of the
// scaled-out deployment (see the README's "Scaled out"): CouponsService
// and its CapabilityService over Connect, gRPC and gRPC-Web (HTTP/1.1 and
// h2c), /healthz, its JWKS at /.well-known/jwks.json, gRPC reflection,
// Prometheus metrics at /metrics, JSON logs carrying the txn on standard
// error, and OpenTelemetry spans when OTEL_EXPORTER_OTLP_ENDPOINT is set.
// SIGINT or SIGTERM stops it gracefully.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr              listen address (TOKENRELAY_ADDR, default 127.0.0.1:8081)
//	-data              data directory (TOKENRELAY_DATA, default .data/coupons)
//	-db                SQLite path or postgres:// URL (TOKENRELAY_DATABASE_URL, default sqlite:<data>/coupons.db)
//	-schema            PostgreSQL schema (TOKENRELAY_SCHEMA, default coupons)
//	-db-max-conns      pool size (TOKENRELAY_DB_MAX_CONNS, default 10)
//	-keys              signing key ring directory (TOKENRELAY_KEYS, default <data>/keys)
//	-vault             vault key directory (TOKENRELAY_VAULT, default <data>/vault; TOKENRELAY_VAULT_KEYS wins)
//	-gateway-jwks      URL[,URL...] of the gateway's JWKS, replicas tried in turn (TOKENRELAY_GATEWAY_JWKS, required)
//	-gateway-issuer    iss of the transaction tokens (TOKENRELAY_GATEWAY_ISSUER, default gateway)
//	-order-processing-jwks  URL[,URL...] of OrderProcessing's JWKS: give every replica, tried in turn
//	                        (TOKENRELAY_ORDER_PROCESSING_JWKS, required)
//	-trust-domain      aud of the transaction tokens (TOKENRELAY_TRUST_DOMAIN, default tokenrelay)
//	-jwks-allow-insecure-http  INSECURE: JWKS over plain http:// to hosts other than loopback, on a trusted
//	                   private network only (TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP, default false)
//	-log-level         DEBUG, INFO, WARN or ERROR (TOKENRELAY_LOG_LEVEL, default INFO)
//	-shutdown-timeout  grace for requests in flight on SIGINT/SIGTERM (TOKENRELAY_SHUTDOWN_TIMEOUT, default 10s)
//	-retention         how long a token's confirmation and exercise records are kept after the token expired
//	                   and its exercise last changed (TOKENRELAY_RETENTION, default 720h, 30 days; 0 keeps them)
//	-purge-every       how often this process purges what is past the retention (TOKENRELAY_PURGE_EVERY, default 10m)
//	-seal-constraints  seal the constraints of its confirmation tokens for itself alone (TOKENRELAY_SEAL_CONSTRAINTS,
//	                   default false)
//	-seal-alg          dir or A256KW, the JWE key management of sealed constraints (TOKENRELAY_SEAL_ALG, default dir)
package main

import (
	"context"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityd"
	"github.com/tokenrelay/tokenrelay/services/coupons"
)

// The purge task runs only for a Service that is a capabilityd.Purger.
var _ capabilityd.Purger = (*coupons.Service)(nil)

func main() {
	capabilityd.Main(capabilityd.Domain{
		Name: coupons.Name, Addr: "127.0.0.1:8081", Service: couponsv1connect.CouponsServiceName,
		Build: func(ctx context.Context, d capabilityd.Deps) (capabilityd.Service, error) {
			return coupons.New(ctx, coupons.Config{DB: d.DB, Vault: d.Vault, Logger: d.Logger, Trust: d.Trust,
				SealConstraints: d.SealConstraints, SealAlgorithm: d.SealAlgorithm})
		},
	})
}
