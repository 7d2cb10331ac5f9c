package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable is the group sentinel of a database that cannot serve the
// statement now: its connection was lost or refused, the server is shutting
// down or starting, or (SQLite) the write lock stayed taken past the busy
// timeout. The statement may succeed later, on another connection; retrying
// is the client's call (an RPC answers Unavailable, see package rpcerr).
// [DB.Tx] wraps such errors with it; errors of statements run outside Tx
// are classified by [IsUnavailable].
var ErrUnavailable = errors.New("sqldb: database unavailable")

// PostgreSQL SQLSTATEs of a server that cannot serve now (Appendix A of the
// PostgreSQL manual), besides the whole class 08, connection exception.
const (
	pgAdminShutdown      = "57P01" // pg_terminate_backend, smart or fast shutdown
	pgCrashShutdown      = "57P02"
	pgCannotConnectNow   = "57P03" // starting up, or in recovery
	pgTooManyConnections = "53300" // max_connections reached: a refusal
)

// IsUnavailable reports whether err, or an error it wraps, means that the
// database could not be reached or used, not that the statement is wrong:
//
//   - ErrUnavailable itself;
//   - a lost connection: database/sql's driver.ErrBadConn, io.EOF or
//     io.ErrUnexpectedEOF read from the connection, a *net.OpError (such as
//     a connection reset or refused), or an error flattened to text that
//     says "connection reset", "broken pipe" or "connection refused";
//   - pgx: a *pgconn.ConnectError (the server refused or could not be
//     reached), an error pgconn.SafeToRetry calls safe (the statement was
//     never sent, e.g. "conn closed"), or a network timeout (pgconn.Timeout);
//   - PostgreSQL SQLSTATE class 08 (connection exception), 57P01
//     admin_shutdown (a terminated backend), 57P02 crash_shutdown, 57P03
//     cannot_connect_now and 53300 too_many_connections;
//   - SQLite SQLITE_BUSY or SQLITE_LOCKED (any extended code): another
//     connection held the lock past the busy timeout.
//
// An error that wraps context.Canceled or context.DeadlineExceeded is never
// unavailable: the caller's context ended (a deadline the caller set is the
// caller's, even while database/sql waits for a pooled connection), and
// that is how it is reported. A PostgreSQL serialization failure or
// deadlock is contention, [IsRetryable], not unavailability.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	// An answer of the server: its code decides, whatever else the chain
	// holds.
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgUnavailable(pgErr.Code)
	}
	if sqlErr, ok := errors.AsType[*sqlite.Error](err); ok {
		// Extended result codes carry the primary code in the low byte.
		switch sqlErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return false
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE} {
		if errors.Is(err, target) {
			return true
		}
	}
	// Some layers flatten the network error into text (%v, not %w).
	msg := err.Error()
	return strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "connection refused")
}

func pgUnavailable(code string) bool {
	switch code {
	case pgAdminShutdown, pgCrashShutdown, pgCannotConnectNow, pgTooManyConnections:
		return true
	}
	return strings.HasPrefix(code, "08")
}

// markUnavailable wraps err with ErrUnavailable when IsUnavailable(err)
// and it does not already.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
