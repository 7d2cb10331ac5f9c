package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// wantUnavailable checks IsUnavailable(err) and that wrapping keeps it.
func wantUnavailable(t *testing.T, what string, err error, want bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if got := sqldb.IsUnavailable(err); got != want {
		t.Errorf("%s: IsUnavailable(%v) = %v, want %v", what, err, got, want)
	}
	if got := sqldb.IsUnavailable(fmt.Errorf("store: %w", err)); got != want {
		t.Errorf("%s: IsUnavailable of the wrapped error = %v, want %v", what, got, want)
	}
}

// TestUnavailableSynthetic: the errors a driver or the network hands back
// when the database cannot be reached, and their look-alikes that are not.
func TestUnavailableSynthetic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"group sentinel", sqldb.ErrUnavailable, true},
		{"bad connection", driver.ErrBadConn, true},
		{"unexpected EOF", fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF), true},
		{"EOF on a connection", fmt.Errorf("read: %w", io.EOF), true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset, flattened to text", errors.New("write tcp 10.0.0.7:5432: connection reset by peer"), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure class 08", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure is contention", &pgconn.PgError{Code: "40001"}, false},
		{"no rows", sql.ErrNoRows, false},
		{"some other failure", errors.New("boom"), false},
		// The caller's deadline or cancellation is theirs, not the
		// database's, even on a connection error.
		{"caller's deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"caller cancelled during a read", errors.Join(context.Canceled, io.ErrUnexpectedEOF), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantUnavailable(t, tc.name, tc.err, tc.want)
		})
	}
	if sqldb.IsUnavailable(nil) {
		t.Error("IsUnavailable(nil) = true")
	}
}

// pgSession is a PostgreSQL database of the test's own schema, whose
// connections carry a unique application_name, and an admin connection
// that terminates them: the test ends only its own backends, never those of
// other tests sharing the server.
type pgSession struct {
	db, admin *sqldb.DB
}

func newPGSession(t *testing.T, opts ...sqldb.Option) pgSession {
	t.Helper()
	return pgSession{db: sqldbtest.Postgres(t, opts...), admin: sqldbtest.Postgres(t, sqldb.WithMaxOpenConns(1))}
}

// terminate ends backend pid from the admin connection, as an operator's
// pg_terminate_backend or a failover does: the backend sends FATAL 57P01
// and closes its socket.
func (s pgSession) terminate(t *testing.T, pid int) {
	t.Helper()
	var ok bool
	if err := s.admin.SQL().QueryRowContext(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// TestUnavailablePostgres: real errors of a PostgreSQL server whose
// backends are terminated, or that refuses or answers with the SQLSTATEs of
// a server shutting down, are unavailable; Tx wraps them with
// ErrUnavailable. Errors of a working server, and the caller's own
// deadline while waiting for a pooled connection, are not.
func TestUnavailablePostgres(t *testing.T) {
	t.Parallel()
	s := newPGSession(t, sqldb.WithMaxOpenConns(1))
	ctx := t.Context()

	t.Run("terminated inside a transaction", func(t *testing.T) {
		var stmtErr error
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			var pid int
			if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			s.terminate(t, pid)
			_, stmtErr = tx.ExecContext(ctx, `SELECT 1`)
			return stmtErr
		})
		if _, ok := errors.AsType[*pgconn.PgError](stmtErr); !ok {
			t.Fatalf("statement after termination: %v, want a PgError", stmtErr)
		}
		wantUnavailable(t, "statement on a terminated backend (57P01)", stmtErr, true)
		if !errors.Is(err, sqldb.ErrUnavailable) {
			t.Errorf("Tx returned %v, want it to wrap ErrUnavailable", err)
		}
	})

	t.Run("terminated while a query runs", func(t *testing.T) {
		conn, err := s.db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var pid int
		if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		// The query waits on an advisory lock the admin holds, so it is
		// running when its backend is terminated.
		const lock = 0x7e57_0001
		if _, err := s.admin.SQL().ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lock); err != nil {
			t.Fatal(err)
		}
		defer s.admin.SQL().ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lock)
		done := make(chan error, 1)
		go func() {
			_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lock)
			done <- err
		}()
		waitForLockWait(t, s.admin, pid)
		s.terminate(t, pid)
		err = <-done
		wantUnavailable(t, "query cut by termination", err, true)
		// The same connection afterwards: database/sql's bad connection.
		_, err = conn.ExecContext(ctx, `SELECT 1`)
		wantUnavailable(t, "the dead connection reused", err, true)
	})

	t.Run("commit after termination", func(t *testing.T) {
		tx, err := s.db.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		s.terminate(t, pid)
		_, _ = tx.ExecContext(ctx, `SELECT 1`) // reads the FATAL: the connection is closed
		wantUnavailable(t, "commit on a closed connection", tx.Commit(), true)
	})

	t.Run("shutdown and connection SQLSTATEs", func(t *testing.T) {
		for code, want := range map[string]bool{
			"57P01": true, "57P02": true, "57P03": true, "08006": true, "08001": true, "53300": true,
			"23505": false, "40001": false, "42601": false, "P0001": false,
		} {
			_, err := s.db.SQL().ExecContext(ctx, `DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '`+code+`'; END $$`)
			if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != code {
				t.Fatalf("RAISE %s: %v", code, err)
			}
			wantUnavailable(t, "SQLSTATE "+code, err, want)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		// Port 1 on loopback refuses at once.
		_, err := sqldb.Open(ctx, "postgres://u@127.0.0.1:1/x?sslmode=disable")
		wantUnavailable(t, "refused", err, true)
	})

	t.Run("pool wait past the caller's deadline", func(t *testing.T) {
		held, err := s.db.SQL().Conn(ctx) // the pool's only connection
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		err = s.db.Tx(wctx, func(*sql.Tx) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Tx waiting for a connection: %v, want the caller's deadline", err)
		}
		wantUnavailable(t, "caller's deadline in the pool", err, false)
		if errors.Is(err, sqldb.ErrUnavailable) {
			t.Errorf("Tx wrapped the caller's deadline as unavailable: %v", err)
		}
	})
}

// waitForLockWait returns once backend pid waits on a lock. It polls the
// server's own view of the backend: the condition, not a clock.
func waitForLockWait(t *testing.T, admin *sqldb.DB, pid int) {
	t.Helper()
	for {
		var waiting bool
		err := admin.SQL().QueryRowContext(t.Context(),
			`SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
	}
}

// TestUnavailableSQLiteBusy: a SQLite writer that cannot get the write lock
// within the busy timeout (another connection holds it) is unavailable
// once Tx gives up, and Tx says so with ErrUnavailable.
func TestUnavailableSQLiteBusy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := "sqlite://" + filepath.Join(t.TempDir(), "busy.db")
	db, err := sqldb.Open(ctx, path, sqldb.WithBusyTimeout(time.Millisecond), sqldb.WithTxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holder, err := sqldb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.SQL().ExecContext(ctx, `CREATE TABLE kv (k TEXT NOT NULL PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// The holder's transaction begins immediate: it has the write lock
	// until it ends.
	htx, err := holder.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer htx.Rollback()
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO kv (k) VALUES ('a')`)
		return err
	})
	if !sqldb.IsRetryable(err) {
		t.Fatalf("Tx against a held write lock: %v, want SQLITE_BUSY", err)
	}
	wantUnavailable(t, "SQLite busy past the busy timeout", err, true)
	if !errors.Is(err, sqldb.ErrUnavailable) {
		t.Errorf("Tx returned %v, want it to wrap ErrUnavailable", err)
	}
}
