// Package sqldbtest opens throwaway databases for store contract tests, so
// that one suite runs against SQLite and PostgreSQL alike:
//
//	func TestStore(t *testing.T) {
//		t.Parallel()
//		sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
//			// migrate db, build the store, exercise the contract
//		})
//	}
//
// PostgreSQL comes from the URL in TOKENRELAY_TEST_POSTGRES_URL (default
// [DefaultPostgresURL]). When it is not reachable, PostgreSQL tests are
// skipped with a message saying so, unless TOKENRELAY_REQUIRE_POSTGRES=1 (as
// in CI), in which case they fail.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// Environment variables read by [Postgres].
const (
	// EnvPostgresURL holds the URL of a PostgreSQL database the tests may
	// create and drop schemas in.
	EnvPostgresURL = "TOKENRELAY_TEST_POSTGRES_URL"
	// EnvRequirePostgres, set to "1", turns an unreachable PostgreSQL from
	// a skip into a failure.
	EnvRequirePostgres = "TOKENRELAY_REQUIRE_POSTGRES"
)

// DefaultPostgresURL is used when EnvPostgresURL is unset: the local
// development server with trust authentication.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// connectTimeout bounds how long an absent server delays a test that may
// skip. When EnvRequirePostgres is 1 the test may not skip, so the first
// connection has no bound of its own but the test binary's -timeout: a busy
// machine then slows the test down but never fails it. What follows the
// first connection (the test's own schema, and dropping it) has no time
// limit either.
const connectTimeout = 5 * time.Second

// PostgresURL returns the URL of the PostgreSQL server of EnvPostgresURL
// (default DefaultPostgresURL) once a first connection to it succeeds, and
// otherwise skips t, or fails it when EnvRequirePostgres is 1. Tests that
// start processes of their own on PostgreSQL take their URL from it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	pgURL := os.Getenv(EnvPostgresURL)
	if pgURL == "" {
		pgURL = DefaultPostgresURL
	}
	admin := connect(t, pgURL)
	admin.Close()
	return pgURL
}

// connect opens the first connection to pgURL (see connectTimeout), or
// skips or fails t.
func connect(t testing.TB, pgURL string) *sqldb.DB {
	t.Helper()
	required := os.Getenv(EnvRequirePostgres) == "1"
	ctx := context.Background()
	if !required {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	db, err := sqldb.Open(ctx, pgURL, sqldb.WithMaxOpenConns(1))
	if err != nil {
		msg := "PostgreSQL not reachable at " + redact(pgURL) + "; set " + EnvPostgresURL + ": " + err.Error()
		if required {
			t.Fatal("sqldbtest: " + msg + " (" + EnvRequirePostgres + "=1)")
		}
		t.Skip("sqldbtest: " + msg)
	}
	return db
}

// SQLite opens a fresh SQLite database in a file under t.TempDir(), with the
// production defaults of [sqldb.Open] and opts, and closes it at cleanup
// (before the directory is removed).
func SQLite(t testing.TB, opts ...sqldb.Option) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "test.db"), opts...)
	if err != nil {
		t.Fatalf("sqldbtest: open SQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Postgres opens the PostgreSQL database of EnvPostgresURL with a new schema
// of its own, named after the test, as search_path, and drops the schema
// (CASCADE) at cleanup. opts are passed to [sqldb.Open]; a [sqldb.WithSchema]
// among them is overridden. See the package documentation for when it skips.
func Postgres(t testing.TB, opts ...sqldb.Option) *sqldb.DB {
	t.Helper()
	pgURL := os.Getenv(EnvPostgresURL)
	if pgURL == "" {
		pgURL = DefaultPostgresURL
	}
	admin := connect(t, pgURL)
	schema := schemaFor(t.Name())
	db, err := sqldb.Open(context.Background(), pgURL, append(opts, sqldb.WithSchema(schema))...)
	if err != nil {
		admin.Close()
		t.Fatalf("sqldbtest: open PostgreSQL schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		db.Close()
		defer admin.Close()
		// schema matches [a-z0-9_]+ (see schemaFor), so it needs no quoting.
		if _, err := admin.SQL().ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("sqldbtest: drop schema %s: %v", schema, err)
		}
	})
	return db
}

// Each runs fn as a parallel subtest per store: "sqlite" with [SQLite] and
// "postgres" with [Postgres] (skipped when PostgreSQL is not reachable).
func Each(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	stores := []struct {
		name string
		open func(testing.TB, ...sqldb.Option) *sqldb.DB
	}{
		{"sqlite", SQLite},
		{"postgres", Postgres},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, s.open(t))
		})
	}
}

// schemaFor builds a PostgreSQL identifier from a test name: lower case,
// [a-z0-9_] only, a random suffix so that reruns and parallel packages never
// share a schema, and within the 63-byte identifier limit.
func schemaFor(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	return b.String() + "_" + hex.EncodeToString(suffix[:])
}

// redact hides the password of a database URL in messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
