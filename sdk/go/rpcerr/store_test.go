package rpcerr

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// TestMapStoreUnavailable: a database that cannot be used is Unavailable,
// which clients retry, with a message that names nothing of it; never
// Internal, which they must not retry. The caller's own deadline and
// cancellation stay DeadlineExceeded and Canceled.
func TestMapStoreUnavailable(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	m := New(slog.New(slog.NewTextHandler(&logs, nil)))
	terminated := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	for _, tc := range []struct {
		name string
		err  error
		code connect.Code
	}{
		{"terminated backend", fmt.Errorf("points: spend: %w", terminated), connect.CodeUnavailable},
		{"group sentinel", fmt.Errorf("%w: %w", sqldb.ErrUnavailable, errors.New("conn closed")), connect.CodeUnavailable},
		{"bad connection", fmt.Errorf("store: %w", driver.ErrBadConn), connect.CodeUnavailable},
		{"unexpected EOF", fmt.Errorf("store: %w", io.ErrUnexpectedEOF), connect.CodeUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, connect.CodeUnavailable},
		{"server starting", &pgconn.PgError{Code: "57P03"}, connect.CodeUnavailable},
		{"contention after retries", &pgconn.PgError{Code: "40001"}, connect.CodeUnavailable},
		{"caller's deadline in the pool", fmt.Errorf("sqldb: begin: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		{"caller gone mid-read", errors.Join(context.Canceled, io.ErrUnexpectedEOF), connect.CodeCanceled},
		{"a bug stays internal", &pgconn.PgError{Code: "42601", Message: "syntax error"}, connect.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := m.Map(context.Background(), tc.err)
			if got.Code() != tc.code {
				t.Fatalf("Map(%v) = %v, want %v", tc.err, got.Code(), tc.code)
			}
			want := "store unavailable, retry"
			if sqldb.IsRetryable(tc.err) {
				want = "store busy, retry" // contention, as before
			}
			if tc.code == connect.CodeUnavailable && got.Message() != want {
				t.Errorf("message %q names the failure", got.Message())
			}
		})
	}
	if !strings.Contains(logs.String(), "administrator command") {
		t.Error("the database failure was not logged")
	}
}
