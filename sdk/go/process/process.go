// Package process is the configuration every tokenrelay service binary
// shares, so that each main stays a page of flags and wiring: the flags and
// environment variables of a [Process] (listen address, data directory,
// database, key ring, vault keys, log level, shutdown timeout), what a
// stateful process opens from them ([Process.OpenState]: ring, vault,
// database), its logger ([NewLogger], lines carrying the txn), tracing
// ([Process.Telemetry]), the JWKS cache of the peers it trusts by URL
// ([Peers]), the trust of a process behind the gateway ([GatewayTrust]:
// its flags and the gateway's keys), the end of every main ([Process.Main]:
// signals, an invalid environment refused, the failure logged, the exit
// status), and the Env helpers ([CheckEnv]) and [List] flag the binaries'
// own flags use.
//
// The rule: configuration comes from flags whose defaults are environment
// variables (TOKENRELAY_ plus the flag name in upper case, dashes as
// underscores) and every default is documented on its field; the one
// variable without a flag is vault.EnvKeys, a secret, read when the vault
// opens so that it never shows in -help. Serving itself is package server's
// and metrics package metrics'; [Process.Serve] only hands server the
// configured address, shutdown timeout and slow-client bounds (and
// [Process.ServeEdge] a public origin's certificate, from [TLSConfig], and
// connection filter)
// and puts the
// health probes in front of the handler (health.Probes: /livez, and /readyz
// for the readiness the service mounts at /healthz), and
// [Process.ServeRPC] puts a service's handlers, its tracing and metrics
// options, gRPC reflection and /metrics on one mux, as every service
// behind the gateway does.
package process

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Environment variables of the flags Process registers; each binary's
// own flags follow the same pattern (TOKENRELAY_ plus the flag name in
// upper case, dashes as underscores).
const (
	EnvAddr            = "TOKENRELAY_ADDR"
	EnvData            = "TOKENRELAY_DATA"
	EnvDatabaseURL     = "TOKENRELAY_DATABASE_URL"
	EnvSchema          = "TOKENRELAY_SCHEMA"
	EnvDBMaxConns      = "TOKENRELAY_DB_MAX_CONNS"
	EnvKeys            = "TOKENRELAY_KEYS"
	EnvVault           = "TOKENRELAY_VAULT"
	EnvLogLevel        = "TOKENRELAY_LOG_LEVEL"
	EnvShutdownTimeout = "TOKENRELAY_SHUTDOWN_TIMEOUT"
	EnvReadBodyTimeout = "TOKENRELAY_READ_BODY_TIMEOUT"
	EnvIdleTimeout     = "TOKENRELAY_IDLE_TIMEOUT"
)

// Process is the configuration every tokenrelay service binary shares.
// Flags registers a flag for each field, whose default comes from its
// environment variable when set.
type Process struct {
	// Name is the service's name: the "service" of its log lines, the
	// default data directory .data/<Name> and its SQLite file <Name>.db.
	Name string
	// Addr is the listen address (-addr, TOKENRELAY_ADDR).
	Addr string
	// DataDir holds what the service keeps on disk when nothing else is
	// configured: its SQLite file, key ring and vault keys (-data,
	// TOKENRELAY_DATA, default .data/<Name>).
	DataDir string
	// DatabaseURL is a SQLite path or URL, or a postgres:// URL (-db,
	// TOKENRELAY_DATABASE_URL, default sqlite:<DataDir>/<Name>.db).
	DatabaseURL string
	// Schema is the PostgreSQL schema the service owns, created when
	// missing; ignored on SQLite (-schema, TOKENRELAY_SCHEMA).
	Schema string
	// MaxConns bounds the database pool (-db-max-conns,
	// TOKENRELAY_DB_MAX_CONNS, default 10; keep the sum over every process
	// below the server's max_connections).
	MaxConns int
	// KeysDir is the service's signing key ring directory, created with a
	// fresh ring when empty (-keys, TOKENRELAY_KEYS, default
	// <DataDir>/keys). Replicas of one service share it.
	KeysDir string
	// VaultDir is the directory of the vault keys that encrypt tokens at
	// rest, created with a first key when empty (-vault, TOKENRELAY_VAULT,
	// default <DataDir>/vault). When TOKENRELAY_VAULT_KEYS
	// (vault.EnvKeys) is set, its keys are used instead, read-only.
	// Replicas of one service share them.
	VaultDir string
	// LogLevel is the least level logged (-log-level, TOKENRELAY_LOG_LEVEL,
	// default INFO).
	LogLevel slog.Level
	// ShutdownTimeout is how long requests in flight may finish after
	// SIGINT or SIGTERM (-shutdown-timeout, TOKENRELAY_SHUTDOWN_TIMEOUT,
	// default 10s).
	ShutdownTimeout time.Duration
	// ReadBodyTimeout bounds how long a client may take to send a request
	// body; a response stream (WatchOrder) is not cut by it
	// (-read-body-timeout, TOKENRELAY_READ_BODY_TIMEOUT; 0, the zero
	// value, means server.DefaultReadBodyTimeout, 30s; negative: no bound).
	ReadBodyTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long
	// (-idle-timeout, TOKENRELAY_IDLE_TIMEOUT; 0, the zero value, means
	// server.DefaultIdleTimeout, 2m; negative: never).
	IdleTimeout time.Duration
}

// Flags registers the flags every binary has: -addr (default
// defaultAddr), -data, -keys, -log-level, -shutdown-timeout,
// -read-body-timeout and -idle-timeout.
func (p *Process) Flags(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&p.Addr, "addr", Env(EnvAddr, defaultAddr), "listen address `host:port` (env "+EnvAddr+")")
	fs.StringVar(&p.DataDir, "data", Env(EnvData, filepath.Join(".data", p.Name)),
		"data `directory`: the default place of the SQLite file, key ring and vault keys (env "+EnvData+")")
	fs.StringVar(&p.KeysDir, "keys", Env(EnvKeys, ""),
		"signing key ring `directory`, created when empty; replicas share it (env "+EnvKeys+"; default <data>/keys)")
	p.LogLevel = EnvLevel(EnvLogLevel, slog.LevelInfo)
	fs.TextVar(&p.LogLevel, "log-level", p.LogLevel, "least `level` logged: DEBUG, INFO, WARN or ERROR (env "+EnvLogLevel+")")
	fs.DurationVar(&p.ShutdownTimeout, "shutdown-timeout", EnvDuration(EnvShutdownTimeout, server.DefaultShutdownTimeout),
		"how long requests in flight may finish after SIGINT or SIGTERM (env "+EnvShutdownTimeout+")")
	// Their zero default stands for the server's: flag shows no default of
	// 0, so the usage names it.
	fs.DurationVar(&p.ReadBodyTimeout, "read-body-timeout", EnvDuration(EnvReadBodyTimeout, 0),
		"how long a client may take to send a request body; streams are not cut (env "+EnvReadBodyTimeout+
			"; default "+server.DefaultReadBodyTimeout.String()+", negative: no bound)")
	fs.DurationVar(&p.IdleTimeout, "idle-timeout", EnvDuration(EnvIdleTimeout, 0),
		"close keep-alive connections idle that long (env "+EnvIdleTimeout+
			"; default "+server.DefaultIdleTimeout.String()+", negative: never)")
}

// StoreFlags registers the flags of a service with a database and vault
// keys: -db, -schema (default defaultSchema), -db-max-conns and -vault.
func (p *Process) StoreFlags(fs *flag.FlagSet, defaultSchema string) {
	fs.StringVar(&p.DatabaseURL, "db", Env(EnvDatabaseURL, ""),
		"database: a SQLite path or sqlite: URL, or a postgres:// URL (env "+EnvDatabaseURL+"; default sqlite:<data>/"+p.Name+".db)")
	fs.StringVar(&p.Schema, "schema", Env(EnvSchema, defaultSchema),
		"PostgreSQL `schema` the service owns, created if missing; ignored on SQLite (env "+EnvSchema+")")
	fs.IntVar(&p.MaxConns, "db-max-conns", EnvInt(EnvDBMaxConns, 10), "database connection pool size (env "+EnvDBMaxConns+")")
	fs.StringVar(&p.VaultDir, "vault", Env(EnvVault, ""),
		"vault key `directory` (tokens at rest), created when empty; replicas share it; "+vault.EnvKeys+
			" (version:base64key,...) wins when set (env "+EnvVault+"; default <data>/vault)")
}

// Logger returns the process's JSON logger on standard error (NewLogger).
func (p Process) Logger() *slog.Logger { return NewLogger(os.Stderr, p.LogLevel, p.Name) }

// OpenDB opens the service's database: DatabaseURL (default the SQLite
// file <DataDir>/<Name>.db) with Schema as its PostgreSQL schema.
func (p Process) OpenDB(ctx context.Context) (*sqldb.DB, error) {
	u := p.DatabaseURL
	if u == "" {
		if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
			return nil, err
		}
		u = "sqlite:" + filepath.Join(p.DataDir, p.Name+".db")
	}
	return p.Open(ctx, u, p.Schema)
}

// Open opens the database at url with schema (PostgreSQL only) and the
// pool size MaxConns; a SQLite file is owner-only (sqldb.Open narrows one
// that others may read, logged with the process's logger).
func (p Process) Open(ctx context.Context, url, schema string) (*sqldb.DB, error) {
	opts := []sqldb.Option{sqldb.WithMaxOpenConns(p.MaxConns), sqldb.WithLogger(p.Logger())}
	if schema != "" {
		opts = append(opts, sqldb.WithSchema(schema))
	}
	return sqldb.Open(ctx, url, opts...)
}

// Ring opens the key ring of KeysDir (default <DataDir>/keys).
func (p Process) Ring() (*keys.Ring, error) {
	dir := p.KeysDir
	if dir == "" {
		dir = filepath.Join(p.DataDir, "keys")
	}
	return keys.OpenRing(dir)
}

// Vault returns the vault key ring: the keys of TOKENRELAY_VAULT_KEYS
// (vault.EnvKeys) when set, read-only; else those of VaultDir (default
// <DataDir>/vault), created with a first key when empty.
func (p Process) Vault() (*vault.Keyring, error) {
	if v := os.Getenv(vault.EnvKeys); v != "" {
		return vault.ParseKeys(v)
	}
	dir := p.VaultDir
	if dir == "" {
		dir = filepath.Join(p.DataDir, "vault")
	}
	return vault.LoadDir(dir)
}

// State is what a stateful service process owns: its signing key ring, its
// vault keys and its database.
type State struct {
	Ring  *keys.Ring
	Vault *vault.Keyring
	DB    *sqldb.DB
}

// OpenState opens Ring, Vault and OpenDB, in that order; close State.DB
// when done. What it creates is the process's alone: directories 0700,
// the key ring, vault keys and SQLite files (with their -wal and -shm)
// 0600.
func (p Process) OpenState(ctx context.Context) (State, error) {
	ring, err := p.Ring()
	if err != nil {
		return State{}, err
	}
	vk, err := p.Vault()
	if err != nil {
		return State{}, err
	}
	db, err := p.OpenDB(ctx)
	if err != nil {
		return State{}, err
	}
	return State{Ring: ring, Vault: vk, DB: db}, nil
}

// Serve listens on Addr and runs h with the house settings (server.New,
// with ReadBodyTimeout and IdleTimeout) until ctx ends, beside tasks, and
// shuts down gracefully within ShutdownTimeout (server.Run). The health
// probes come first (health.Probes): GET /livez answers 200 while the
// process serves, GET /readyz is h's readiness at /healthz. It logs the
// address it listens on.
func (p Process) Serve(ctx context.Context, log *slog.Logger, h http.Handler, tasks ...server.Task) error {
	return p.ServeEdge(ctx, log, h, Edge{}, tasks...)
}

// Edge is what a public origin (gatewayd, tokenrelayd) adds to Serve.
type Edge struct {
	// Cert, when set, serves HTTPS with its certificate (HTTP/2 and
	// HTTP/1.1 by ALPN), reloaded as it says (CertReloader.Run runs beside
	// the tasks); see TLSConfig.
	Cert *server.CertReloader
	// Accept, when set, filters the connections by peer address as they
	// are accepted, before TLS (server.Listen): gatewayd's
	// Gateway.AcceptConn, which resets the connections of a client that
	// has spent its budget of failed authentications.
	Accept func(remote net.Addr) bool
}

// ServeEdge is Serve with the certificate and connection filter of e.
func (p Process) ServeEdge(ctx context.Context, log *slog.Logger, h http.Handler, e Edge, tasks ...server.Task) error {
	srv := server.New(health.Probes(h), server.WithLogger(log),
		server.WithReadBodyTimeout(p.ReadBodyTimeout), server.WithIdleTimeout(p.IdleTimeout))
	ln, err := server.Listen(p.Addr, e.Accept)
	if err != nil {
		return err
	}
	if e.Cert != nil {
		ln = tls.NewListener(ln, e.Cert.TLSConfig())
		tasks = append(tasks[:len(tasks):len(tasks)], e.Cert.Run)
	}
	log.Info("listening", "addr", ln.Addr().String(), "tls", e.Cert != nil)
	return server.Run(ctx, srv, ln, p.ShutdownTimeout, tasks...)
}

// Telemetry sets up tracing for the process (telemetry.Setup: spans
// export over OTLP only when the standard OTEL_EXPORTER_OTLP_* variables
// name an endpoint). trustRemote makes server spans children of the
// caller's: true behind the gateway, false at the public edge. The
// returned function flushes and stops it.
func (p Process) Telemetry(ctx context.Context, trustRemote bool) (*telemetry.Telemetry, func(), error) {
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: p.Name, TrustRemote: trustRemote})
	if err != nil {
		return nil, nil, err
	}
	return tel, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	}, nil
}

// NewLogger returns a JSON slog logger writing to w at level, whose lines
// carry the txn of the request in their context (authn.NewLogHandler),
// with the attribute "service" set to service.
func NewLogger(w io.Writer, level slog.Level, service string) *slog.Logger {
	h := authn.NewLogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	return slog.New(h).With("service", service)
}
