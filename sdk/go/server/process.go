package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
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
}

// Flags registers the flags every binary has: -addr (default
// defaultAddr), -data, -keys, -log-level and -shutdown-timeout.
func (p *Process) Flags(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&p.Addr, "addr", Env(EnvAddr, defaultAddr), "listen address `host:port` (env "+EnvAddr+")")
	fs.StringVar(&p.DataDir, "data", Env(EnvData, filepath.Join(".data", p.Name)),
		"data `directory`: the default place of the SQLite file, key ring and vault keys (env "+EnvData+")")
	fs.StringVar(&p.KeysDir, "keys", Env(EnvKeys, ""),
		"signing key ring `directory`, created when empty; replicas share it (env "+EnvKeys+"; default <data>/keys)")
	p.LogLevel = slog.LevelInfo
	if err := p.LogLevel.UnmarshalText([]byte(Env(EnvLogLevel, "INFO"))); err != nil {
		p.LogLevel = slog.LevelInfo
	}
	fs.TextVar(&p.LogLevel, "log-level", p.LogLevel, "least `level` logged: DEBUG, INFO, WARN or ERROR (env "+EnvLogLevel+")")
	fs.DurationVar(&p.ShutdownTimeout, "shutdown-timeout", EnvDuration(EnvShutdownTimeout, DefaultShutdownTimeout),
		"how long requests in flight may finish after SIGINT or SIGTERM (env "+EnvShutdownTimeout+")")
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
// pool size MaxConns.
func (p Process) Open(ctx context.Context, url, schema string) (*sqldb.DB, error) {
	opts := []sqldb.Option{sqldb.WithMaxOpenConns(p.MaxConns)}
	if schema != "" {
		opts = append(opts, sqldb.WithSchema(schema))
	}
	return sqldb.Open(ctx, url, opts...)
}

// IsPostgres reports whether url names a PostgreSQL database.
func IsPostgres(url string) bool {
	scheme, _, _ := strings.Cut(url, ":")
	return strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql")
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
// when done.
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

// Serve listens on Addr and runs h with the house settings (New) until
// ctx ends, beside tasks, and shuts down gracefully (Run). It logs the
// address it listens on.
func (p Process) Serve(ctx context.Context, log *slog.Logger, h http.Handler, tasks ...Task) error {
	srv := New(h, WithLogger(log))
	return ListenAndRun(ctx, p.Addr, srv, p.ShutdownTimeout, func(a net.Addr) {
		log.Info("listening", "addr", a.String())
	}, tasks...)
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

// Mux returns a ServeMux with Metrics.Handler at MetricsPath.
func Mux(m *Metrics) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, m.Handler())
	return mux
}

// Peers is a JWKS cache for the token issuers a process trusts by URL.
type Peers struct {
	cache *jwks.Cache
}

// NewPeers returns an empty Peers whose cache logs to log.
func NewPeers(log *slog.Logger) (*Peers, error) {
	c, err := jwks.New(jwks.WithLogger(log))
	if err != nil {
		return nil, err
	}
	return &Peers{cache: c}, nil
}

// Add trusts issuer's keys at jwksURL and returns their source.
func (p *Peers) Add(issuer, jwksURL string) (keys.Source, error) {
	if jwksURL == "" {
		return nil, fmt.Errorf("server: no JWKS URL for issuer %q", issuer)
	}
	return p.cache.Add(issuer, jwksURL)
}

// Run refreshes every issuer's keys (jwks.Cache.Run): a Task.
func (p *Peers) Run(ctx context.Context) error { return p.cache.Run(ctx) }

// Fetches returns the cache's key-set fetches (jwks.Cache.Fetches), for
// Metrics.JWKSFetches.
func (p *Peers) Fetches() (ok, failed int64) { return p.cache.Fetches() }

// Close releases the cache.
func (p *Peers) Close() { p.cache.Close() }

// Env returns the environment variable key, or def when it is unset or
// empty.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// EnvInt is Env for an integer; an unparsable value gives def.
func EnvInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

// EnvBool is Env for a boolean (strconv.ParseBool); an unparsable value
// gives def.
func EnvBool(key string, def bool) bool {
	if b, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return b
	}
	return def
}

// EnvDuration is Env for a duration (time.ParseDuration); an unparsable
// value gives def.
func EnvDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

// List is a flag.Value for a comma-separated list, also accepting the flag
// repeated.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *List) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// ErrUsage reports a missing or invalid flag; the mains exit with status 2.
var ErrUsage = errors.New("usage")
