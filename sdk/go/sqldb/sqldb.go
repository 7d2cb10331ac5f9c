package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the database/sql driver "sqlite"
)

// Dialect names the SQL engine behind a [DB].
type Dialect int

const (
	// SQLite is the embedded default (modernc.org/sqlite, pure Go).
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL through pgx, for scale-out.
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	default:
		return "Dialect(" + strconv.Itoa(int(d)) + ")"
	}
}

// ErrUnsupportedURL reports a database URL that [Open] cannot serve: an
// unknown scheme or an in-memory SQLite database.
var ErrUnsupportedURL = errors.New("sqldb: unsupported database URL")

// DB is an open database: a *sql.DB pool plus the dialect it speaks and the
// transaction retry policy of [DB.Tx]. It is safe for concurrent use.
type DB struct {
	sql        *sql.DB
	dialect    Dialect
	txAttempts int
	stmts      stmtCache // see [DB.Stmt]
	// commit runs SQLite's writing transactions one batch at a time (nil
	// on PostgreSQL): writers queue here, in Go, instead of in SQLite's
	// busy handler, which sleeps 1 to 100 ms between tries, and those that
	// queued together commit together (see commit.go).
	commit *committer
	// pgConfig opens the dedicated connections of [DB.Listen] (PostgreSQL).
	pgConfig *pgx.ConnConfig
}

// SQL returns the underlying pool. Statements run on it directly are not
// retried on contention; use [DB.Tx] for writes.
func (db *DB) SQL() *sql.DB { return db.sql }

// Dialect reports which engine db talks to.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close closes the cached prepared statements ([DB.Stmt]) and the pool.
func (db *DB) Close() error {
	if db.commit != nil {
		db.commit.close()
	}
	return errors.Join(db.stmts.close(), db.sql.Close())
}

type config struct {
	busyTimeout  time.Duration
	maxOpenConns int
	schema       string
	txAttempts   int
	logger       *slog.Logger
}

// Option configures [Open].
type Option func(*config)

// WithBusyTimeout sets how long a SQLite statement waits for the write lock
// before failing with SQLITE_BUSY (which [DB.Tx] then retries). Default 5 s.
// Ignored on PostgreSQL.
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) { c.busyTimeout = d }
}

// WithMaxOpenConns bounds the pool. Defaults: 8 on SQLite (readers run in
// parallel under WAL; writers queue on the lock anyway), 10 on PostgreSQL,
// so that several services and replicas fit in the server's default
// max_connections of 100.
func WithMaxOpenConns(n int) Option {
	return func(c *config) { c.maxOpenConns = n }
}

// WithSchema makes name the PostgreSQL search_path of every connection and
// creates the schema if it does not exist, so that each service owns its
// tables inside a shared database. name must be a plain lower-case
// identifier ([a-z_][a-z0-9_]*, at most 63 bytes). Default: the URL's
// search_path parameter, else the server's default. Ignored on SQLite, where
// each service has its own file.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}

// WithTxAttempts sets how many times [DB.Tx] runs a transaction that keeps
// failing with a retryable error (see [IsRetryable]) before returning that
// error. Default 5; values below 1 mean 1.
func WithTxAttempts(n int) Option {
	return func(c *config) { c.txAttempts = n }
}

// WithLogger sets where Open logs a SQLite file it had to narrow to
// owner-only access (see Open). Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// Open opens and pings the database named by rawURL:
//
//   - postgres://... or postgresql://... opens PostgreSQL through pgx;
//     libpq-style parameters such as sslmode and search_path are honoured.
//   - sqlite:///abs/path.db, sqlite:rel/path.db, file:path.db?... (a SQLite
//     URI) or a plain file path opens SQLite, creating the file if needed.
//     Query parameters are passed to modernc.org/sqlite and override the
//     defaults described in the package documentation. The database file
//     and its -wal, -shm and -journal files are owner-only
//     (PrivateFileMode, 0600): Open creates the file so, and narrows an
//     existing one that group or others may read, logging it (WithLogger).
//
// The returned DB must be closed.
func Open(ctx context.Context, rawURL string, opts ...Option) (*DB, error) {
	cfg := config{busyTimeout: 5 * time.Second, txAttempts: 5}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.txAttempts < 1 {
		cfg.txAttempts = 1
	}
	var (
		db  *DB
		err error
	)
	if IsPostgres(rawURL) {
		db, err = openPostgres(ctx, rawURL, cfg)
	} else {
		db, err = openSQLite(ctx, rawURL, cfg)
	}
	if err != nil {
		return nil, err
	}
	db.txAttempts = cfg.txAttempts
	return db, nil
}

// IsPostgres reports whether rawURL names a PostgreSQL database (scheme
// postgres or postgresql, in any letter case), which Open opens through
// pgx; any other URL or path is SQLite.
func IsPostgres(rawURL string) bool {
	scheme, _, _ := strings.Cut(rawURL, ":")
	return strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql")
}

func openPostgres(ctx context.Context, rawURL string, cfg config) (*DB, error) {
	pc, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx errors can quote the URL, password included.
		return nil, fmt.Errorf("%w: cannot parse PostgreSQL URL", ErrUnsupportedURL)
	}
	if cfg.schema != "" {
		if !ValidSchemaName(cfg.schema) {
			return nil, fmt.Errorf("sqldb: invalid schema name %q", cfg.schema)
		}
		// The schema must exist before a connection with this search_path
		// can create tables, so create it over a connection without one.
		if err := createSchema(ctx, pc.Copy(), cfg.schema); err != nil {
			return nil, err
		}
		pc.RuntimeParams["search_path"] = cfg.schema
	}
	pool := stdlib.OpenDB(*pc)
	if cfg.maxOpenConns <= 0 {
		cfg.maxOpenConns = 10
	}
	pool.SetMaxOpenConns(cfg.maxOpenConns)
	pool.SetMaxIdleConns(cfg.maxOpenConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sqldb: connect to PostgreSQL at %s: %w", pc.Host, err)
	}
	return &DB{sql: pool, dialect: Postgres, pgConfig: pc}, nil
}

// ValidSchemaName reports whether name is a schema WithSchema accepts:
// [a-z_][a-z0-9_]* of at most 63 bytes (the PostgreSQL identifier limit),
// a name that needs no quoting anywhere.
func ValidSchemaName(name string) bool {
	if name == "" || len(name) > 63 || ('0' <= name[0] && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func createSchema(ctx context.Context, pc *pgx.ConnConfig, schema string) error {
	delete(pc.RuntimeParams, "search_path")
	db := stdlib.OpenDB(*pc)
	defer db.Close()
	_, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	// Two processes racing on IF NOT EXISTS can both miss the schema; the
	// loser gets a unique violation on the catalog, and the schema exists.
	if err != nil && !IsUniqueViolation(err) {
		return fmt.Errorf("sqldb: create schema %q: %w", schema, err)
	}
	return nil
}

// sqliteDefaults are applied unless the URL sets the same key. See the
// package documentation for why each is chosen.
func sqliteDefaults(cfg config) url.Values {
	return url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"},
		"_foreign_keys": {"1"},
		"_busy_timeout": {strconv.FormatInt(cfg.busyTimeout.Milliseconds(), 10)},
		"_txlock":       {"immediate"},
		"_time_format":  {"sqlite"},
		"_timezone":     {"UTC"},
	}
}

// sqliteDSN turns the accepted SQLite URL forms into a modernc DSN with the
// defaults merged in.
func sqliteDSN(rawURL string, cfg config) (string, error) {
	name, rawQuery, _ := strings.Cut(rawURL, "?")
	lower := strings.ToLower(name)
	switch {
	case strings.HasPrefix(lower, "sqlite:"):
		u, err := url.Parse(name)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnsupportedURL, err)
		}
		name = u.Opaque
		if name == "" {
			// sqlite:///abs/path has an empty host; sqlite://rel/path
			// reads as host "rel", which is the first path element.
			name = u.Host + u.Path
		} else if name, err = url.PathUnescape(name); err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnsupportedURL, err)
		}
	case strings.HasPrefix(lower, "file:"):
		// A SQLite URI: modernc passes it to SQLite whole.
	case strings.Contains(name, "://"):
		scheme, _, _ := strings.Cut(name, "://")
		return "", fmt.Errorf("%w: unknown scheme %q", ErrUnsupportedURL, scheme)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: query: %v", ErrUnsupportedURL, err)
	}
	if name == "" || strings.Contains(name, ":memory:") || q.Get("mode") == "memory" {
		return "", fmt.Errorf("%w: SQLite needs a database file (in-memory databases are per connection)", ErrUnsupportedURL)
	}
	for k, v := range sqliteDefaults(cfg) {
		if _, set := q[k]; !set {
			q[k] = v
		}
	}
	return name + "?" + q.Encode(), nil
}

func openSQLite(ctx context.Context, rawURL string, cfg config) (*DB, error) {
	dsn, err := sqliteDSN(rawURL, cfg)
	if err != nil {
		return nil, err
	}
	path, create := sqliteFile(dsn)
	privateFiles(path, create, cfg.logger)
	pool, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqldb: open SQLite: %w", err)
	}
	if cfg.maxOpenConns <= 0 {
		cfg.maxOpenConns = 8
	}
	pool.SetMaxOpenConns(cfg.maxOpenConns)
	// Keep connections: opening one re-runs every PRAGMA.
	pool.SetMaxIdleConns(cfg.maxOpenConns)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sqldb: open SQLite %q: %w", Redact(rawURL), err)
	}
	return &DB{sql: pool, dialect: SQLite, commit: newCommitter(pool)}, nil
}

// Redact returns a database URL or path fit for messages and logs: without
// its query and fragment, the places of keys and libpq parameters such as
// password, and with the password of its user info replaced by "xxxxx". A
// URL with user info that does not parse becomes "(unparsable URL)".
func Redact(rawURL string) string {
	name, _, _ := strings.Cut(rawURL, "?")
	name, _, _ = strings.Cut(name, "#")
	if !strings.Contains(name, "@") {
		return name
	}
	u, err := url.Parse(name)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
