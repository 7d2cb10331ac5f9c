package rpcerr

import (
	"errors"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// The client messages of a store failure: fixed text that names neither
// the database nor the failure, which is logged instead.
var (
	errStoreBusy        = errors.New("store busy, retry")
	errStoreUnavailable = errors.New("store unavailable, retry")
)

// store maps the failures of a service's database that a client may retry
// to Unavailable, and returns nil for any other error:
//
//   - contention that outlasted sqldb's transaction retries
//     (sqldb.IsRetryable: SQLite busy or locked past its busy timeout,
//     PostgreSQL serialization failure or deadlock): "store busy, retry";
//   - the database unavailable (sqldb.IsUnavailable, which includes
//     sqldb.ErrUnavailable): a connection lost, terminated or refused, the
//     server shutting down or starting: "store unavailable, retry".
//
// A dependency down is Unavailable, never Internal (which clients must not
// retry). Map calls it after the caller's own cancellation and deadline,
// which keep their codes (sqldb.IsUnavailable never claims them either).
func store(err error) *connect.Error {
	switch {
	case sqldb.IsRetryable(err):
		return connect.NewError(connect.CodeUnavailable, errStoreBusy)
	case sqldb.IsUnavailable(err):
		return connect.NewError(connect.CodeUnavailable, errStoreUnavailable)
	}
	return nil
}
