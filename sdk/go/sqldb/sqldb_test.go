package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

func TestOpenSQLiteSettings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect() != sqldb.SQLite {
		t.Errorf("Dialect() = %v, want sqlite", db.Dialect())
	}
	pragmas := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "1"}, // NORMAL
		{"busy_timeout", "5000"},
	}
	for _, p := range pragmas {
		var got string
		if err := db.SQL().QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", p.pragma, err)
		}
		if got != p.want {
			t.Errorf("PRAGMA %s = %q, want %q", p.pragma, got, p.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		opts []sqldb.Option
	}{
		// Port 1 on loopback refuses at once.
		{"unreachable", "postgres://u:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", nil},
		{"bad schema", "postgres://u:secret@127.0.0.1:1/x", []sqldb.Option{sqldb.WithSchema("Bad-Name")}},
		{"bad postgres url", "postgres://u:secret@[::1/x", nil},
		{"bad sqlite param", "sqlite://" + filepath.Join(t.TempDir(), "x.db") + "?_txlock=sometimes", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := sqldb.Open(t.Context(), tt.url, tt.opts...)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestDialectString(t *testing.T) {
	t.Parallel()
	for d, want := range map[sqldb.Dialect]string{sqldb.SQLite: "sqlite", sqldb.Postgres: "postgres", 0: "Dialect(0)"} {
		if got := d.String(); got != want {
			t.Errorf("Dialect(%d).String() = %q, want %q", int(d), got, want)
		}
	}
}

// TestPortableSQL pins the SQL both dialects accept unchanged.
func TestPortableSQL(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		// The one DDL difference: a time column is TIMESTAMPTZ on
		// PostgreSQL (TIMESTAMP drops the offset) and TIMESTAMP on SQLite
		// (the declared type the driver parses back into time.Time).
		timeType := map[sqldb.Dialect]string{sqldb.SQLite: "TIMESTAMP", sqldb.Postgres: "TIMESTAMPTZ"}[db.Dialect()]
		exec(t, db, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL, at `+timeType+`)`)
		at := time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("X", 3600))
		exec(t, db, `INSERT INTO kv (k, v, n, at) VALUES ($1, $2, $3, $4)`, "a", "x", 1, at)
		// A repeated $N binds the same argument; ON CONFLICT and
		// RETURNING work on both.
		var v string
		var n int64
		err := db.SQL().QueryRowContext(ctx,
			`INSERT INTO kv (k, v, n) VALUES ($1, $2, $3) ON CONFLICT (k) DO UPDATE SET v = $2 || $2, n = kv.n + $3 RETURNING v, n`,
			"a", "y", 2).Scan(&v, &n)
		if err != nil {
			t.Fatal(err)
		}
		if v != "yy" || n != 3 {
			t.Errorf("upsert returned %q, %d; want yy, 3", v, n)
		}
		res, err := db.SQL().ExecContext(ctx, `INSERT INTO kv (k, v, n) VALUES ($1, $1, 0) ON CONFLICT DO NOTHING`, "a")
		if err != nil {
			t.Fatal(err)
		}
		if rows, _ := res.RowsAffected(); rows != 0 {
			t.Errorf("DO NOTHING affected %d rows, want 0", rows)
		}
		// Stored times compare with time.Time arguments on both.
		var count int
		if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM kv WHERE at < $1`, at.Add(time.Millisecond)).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != 1 {
			t.Errorf("time comparison matched %d rows, want 1", count)
		}
		var got time.Time
		if err := db.SQL().QueryRowContext(ctx, `SELECT at FROM kv WHERE k = $1`, "a").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(at) {
			t.Errorf("time round trip = %v, want %v", got, at)
		}
	})
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		exec(t, db, `CREATE TABLE u (id TEXT NOT NULL PRIMARY KEY, email TEXT UNIQUE)`)
		exec(t, db, `INSERT INTO u (id, email) VALUES ($1, $2)`, "1", "a@example.com")
		tests := []struct {
			name          string
			query         string
			args          []any
			wantUnique    bool
			wantRetryable bool
		}{
			{"primary key", `INSERT INTO u (id) VALUES ($1)`, []any{"1"}, true, false},
			{"unique column", `INSERT INTO u (id, email) VALUES ($1, $2)`, []any{"2", "a@example.com"}, true, false},
			{"syntax", `INSERT INTO`, nil, false, false},
			{"not null", `INSERT INTO u (id) VALUES (NULL)`, nil, false, false},
		}
		for _, tt := range tests {
			_, err := db.SQL().ExecContext(t.Context(), tt.query, tt.args...)
			if err == nil {
				t.Fatalf("%s: no error", tt.name)
			}
			wrapped := errors.Join(errors.New("context"), err)
			if got := sqldb.IsUniqueViolation(wrapped); got != tt.wantUnique {
				t.Errorf("%s: IsUniqueViolation(%v) = %v", tt.name, err, got)
			}
			if got := sqldb.IsRetryable(wrapped); got != tt.wantRetryable {
				t.Errorf("%s: IsRetryable(%v) = %v", tt.name, err, got)
			}
		}
	})
	for _, err := range []error{nil, errors.New("x"), sql.ErrNoRows, context.Canceled} {
		if sqldb.IsUniqueViolation(err) || sqldb.IsRetryable(err) {
			t.Errorf("%v classified as unique violation or retryable", err)
		}
	}
}

func TestTxRetryPolicy(t *testing.T) {
	t.Parallel()
	retryable := &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
	deadlock := &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	permanent := errors.New("business refusal")
	tests := []struct {
		name         string
		failures     []error // returned by attempts 1..n, then success
		attempts     int     // WithTxAttempts
		wantErr      error
		wantAttempts int
	}{
		{"success", nil, 5, nil, 1},
		{"serialization failure retried", []error{retryable, retryable}, 5, nil, 3},
		{"deadlock retried", []error{deadlock}, 5, nil, 2},
		{"permanent not retried", []error{permanent}, 5, permanent, 1},
		{"attempts bounded", []error{retryable, retryable, retryable, retryable}, 3, retryable, 3},
		{"one attempt", []error{retryable}, 0, retryable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := sqldbtest.SQLite(t, sqldb.WithTxAttempts(tt.attempts))
			exec(t, db, `CREATE TABLE effects (attempt BIGINT)`)
			var attempts int
			err := db.Tx(t.Context(), func(tx *sql.Tx) error {
				attempts++
				// Each attempt writes; only a committed one may remain.
				if _, err := tx.ExecContext(t.Context(), `INSERT INTO effects (attempt) VALUES ($1)`, attempts); err != nil {
					return err
				}
				if attempts <= len(tt.failures) {
					return tt.failures[attempts-1]
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Tx() error = %v, want %v", err, tt.wantErr)
			}
			if attempts != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", attempts, tt.wantAttempts)
			}
			var rows int
			if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM effects`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.wantErr == nil]; rows != want {
				t.Errorf("%d effects committed, want %d (rolled back attempts must leave none)", rows, want)
			}
		})
	}
}

func TestTxCancelledDuringBackoff(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t, sqldb.WithTxAttempts(1000))
	ctx, cancel := context.WithCancel(t.Context())
	err := db.Tx(ctx, func(*sql.Tx) error {
		cancel()
		return &pgconn.PgError{Code: "40001"}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Tx() error = %v, want context.Canceled", err)
	}
}

func TestTxPanicRollsBack(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	exec(t, db, `CREATE TABLE p (x BIGINT)`)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		db.Tx(t.Context(), func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(t.Context(), `INSERT INTO p VALUES (1)`); err != nil {
				t.Error(err)
			}
			panic("boom")
		})
	}()
	// The connection went back to the pool without an open transaction:
	// a new write neither blocks nor sees the row.
	exec(t, db, `INSERT INTO p VALUES (2)`)
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM p`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

// TestTxConcurrentReadModifyWrite makes many transactions read a counter and
// write it back incremented. On SQLite the immediate lock serializes them;
// on PostgreSQL they run SERIALIZABLE, fail with 40001, and are retried. No
// increment may be lost either way.
func TestTxConcurrentReadModifyWrite(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		exec(t, db, `CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)`)
		exec(t, db, `INSERT INTO counter VALUES (1, 0)`)
		const workers = 16
		var wg sync.WaitGroup
		var tries atomic.Int64
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				errs <- db.Tx(t.Context(), func(tx *sql.Tx) error {
					tries.Add(1)
					ctx := t.Context()
					if db.Dialect() == sqldb.Postgres {
						if _, err := tx.ExecContext(ctx, `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`); err != nil {
							return err
						}
					}
					var n int64
					if err := tx.QueryRowContext(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, `UPDATE counter SET n = $1 WHERE id = 1`, n+1)
					return err
				})
			})
		}
		wg.Wait()
		close(errs)
		var committed int64
		for err := range errs {
			switch {
			case err == nil:
				committed++
			case !sqldb.IsRetryable(err):
				t.Errorf("Tx: %v", err)
			}
			// A retryable error after the default five attempts is
			// possible on PostgreSQL under this much contention.
		}
		var n int64
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d attempts for %d committed increments", db.Dialect(), tries.Load(), committed)
		if n != committed {
			t.Errorf("counter = %d, but %d increments committed: updates lost", n, committed)
		}
		if db.Dialect() == sqldb.SQLite && committed != workers {
			t.Errorf("%d of %d SQLite transactions committed, want all", committed, workers)
		}
	})
}

func exec(t *testing.T, db *sqldb.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.SQL().ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestSQLiteWritersQueueInGo (issue 17): SQLite's writing transactions wait
// for each other in Go, not in SQLite's busy handler. With no busy timeout
// and a single attempt, concurrent writers used to fail with SQLITE_BUSY;
// queued, every one commits.
func TestSQLiteWritersQueueInGo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "w.db"),
		sqldb.WithBusyTimeout(0), sqldb.WithTxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE n (k INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- db.Tx(ctx, func(tx *sql.Tx) error {
					var v int
					if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM n`).Scan(&v); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, `INSERT INTO n (k, v) VALUES ($1, $2)`, w*each+i, v)
					return err
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed == 1 {
				t.Errorf("a writer failed: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d transactions failed", failed, writers*each)
	}
}

// TestListen: notifications reach fn in order; a listener whose connection
// the server terminates reconnects, says so through ready, and receives
// again; ctx ends it. SQLite has no notifications.
func TestListen(t *testing.T) {
	t.Parallel()
	if err := sqldbtest.SQLite(t).Listen(t.Context(), "x", func() {}, func(string) {}); !errors.Is(err, sqldb.ErrNoNotifications) {
		t.Fatalf("Listen on SQLite = %v, want ErrNoNotifications", err)
	}
	db := sqldbtest.Postgres(t)
	channel := fmt.Sprintf("listen_test_%d", time.Now().UnixNano())
	ready, got := make(chan struct{}, 4), make(chan string, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- db.Listen(ctx, channel, func() { ready <- struct{}{} }, func(p string) { got <- p })
	}()
	notify := func(payload string) {
		t.Helper()
		if _, err := db.SQL().ExecContext(t.Context(), `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
			t.Fatal(err)
		}
	}
	<-ready
	notify("one")
	notify("two")
	if a, b := <-got, <-got; a != "one" || b != "two" {
		t.Fatalf("received %q, %q", a, b)
	}
	var killed int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query = $1 AND pid <> pg_backend_pid()`, `LISTEN "`+channel+`"`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate the listener: %d backends, %v", killed, err)
	}
	<-ready // reconnected
	notify("three")
	if p := <-got; p != "three" {
		t.Fatalf("after the reconnection received %q", p)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen = %v after cancel, want context.Canceled", err)
	}
}
