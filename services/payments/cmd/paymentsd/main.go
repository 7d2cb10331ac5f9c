// Command paymentsd runs the Payments service alone, one process of the
// scaled-out deployment (see the README's "Scaled out"): PaymentsService
// and its CapabilityService over Connect, gRPC and gRPC-Web (HTTP/1.1 and
// h2c), /healthz, its JWKS at /.well-known/jwks.json, gRPC reflection,
// Prometheus metrics at /metrics, JSON logs carrying the txn on standard
// error, and OpenTelemetry spans when OTEL_EXPORTER_OTLP_ENDPOINT is set.
// SIGINT or SIGTERM stops it gracefully.
//
// Flags, each defaulting to its environment variable when set:
//
//	-addr              listen address (TOKENRELAY_ADDR, default 127.0.0.1:8083)
//	-data              data directory (TOKENRELAY_DATA, default .data/payments)
//	-db                SQLite path or postgres:// URL (TOKENRELAY_DATABASE_URL, default sqlite:<data>/payments.db)
//	-schema            PostgreSQL schema (TOKENRELAY_SCHEMA, default payments)
//	-processor-db      the simulated processor's database (TOKENRELAY_PROCESSOR_DB; default: on PostgreSQL
//	                   the same URL with schema <schema>_processor, else sqlite:<data>/payments-processor.db)
//	-db-max-conns      pool size, per database (TOKENRELAY_DB_MAX_CONNS, default 10)
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
//	-seal-constraints  seal the constraints of its confirmation tokens for Payments alone (TOKENRELAY_SEAL_CONSTRAINTS,
//	                   default true)
//	-seal-alg          dir or A256KW, the JWE key management of sealed constraints (TOKENRELAY_SEAL_ALG, default dir)
package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityd"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/payments"
)

// The purge task runs only for a Service that is a capabilityd.Purger.
var _ capabilityd.Purger = (*payments.Service)(nil)

func main() {
	// processorDB is the simulated card processor's database, a handle of
	// its own (payments.Config.ProcessorDB).
	var processorDB string
	capabilityd.Main(capabilityd.Domain{
		Name: payments.Name, Addr: "127.0.0.1:8083", Service: paymentsv1connect.PaymentsServiceName,
		SealConstraints: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&processorDB, "processor-db", process.Env("TOKENRELAY_PROCESSOR_DB", ""),
				"the simulated processor's database (env TOKENRELAY_PROCESSOR_DB; default: on PostgreSQL the -db URL with schema <schema>_processor, else sqlite:<data>/payments-processor.db)")
		},
		Build: func(ctx context.Context, d capabilityd.Deps) (capabilityd.Service, error) {
			proc, err := openProcessor(ctx, d.Process, processorDB)
			if err != nil {
				return nil, err
			}
			svc, err := payments.New(ctx, payments.Config{DB: d.DB, ProcessorDB: proc, Vault: d.Vault, Logger: d.Logger, Trust: d.Trust,
				PlainConstraints: !d.SealConstraints, SealAlgorithm: d.SealAlgorithm})
			if err != nil {
				_ = proc.Close()
				return nil, err
			}
			return closing{svc, proc}, nil
		},
	})
}

// closing closes the processor's database after the service.
type closing struct {
	*payments.Service
	proc *sqldb.DB
}

func (c closing) Close() {
	c.Service.Close()
	_ = c.proc.Close()
}

// openProcessor opens the simulated processor's database (see
// -processor-db).
func openProcessor(ctx context.Context, p *process.Process, url string) (*sqldb.DB, error) {
	switch {
	case url != "":
		return p.Open(ctx, url, p.Schema+"_processor")
	case sqldb.IsPostgres(p.DatabaseURL):
		return p.Open(ctx, p.DatabaseURL, p.Schema+"_processor")
	default:
		if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
			return nil, err
		}
		return p.Open(ctx, "sqlite:"+filepath.Join(p.DataDir, "payments-processor.db"), "")
	}
}
