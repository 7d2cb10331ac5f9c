package capabilityrpc

import (
	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
)

// Codes returns the Connect code of each sentinel every domain shares (see
// package capability), for a domain's rpcerr.New next to its own sentinels:
// malformed requests and reused idempotency keys are InvalidArgument, an
// unknown record NotFound, someone else's resource and a token that
// disagrees with its record PermissionDenied, a confirmation exercised for
// another order AlreadyExists, a voided one FailedPrecondition.
func Codes() []rpcerr.Code {
	return []rpcerr.Code{
		{Err: capability.ErrInvalidArgument, Code: connect.CodeInvalidArgument},
		{Err: capability.ErrIdempotencyConflict, Code: connect.CodeInvalidArgument},
		{Err: capability.ErrNotFound, Code: connect.CodeNotFound},
		{Err: capability.ErrPermissionDenied, Code: connect.CodePermissionDenied},
		{Err: capability.ErrMismatch, Code: connect.CodePermissionDenied},
		{Err: capability.ErrAlreadyExercised, Code: connect.CodeAlreadyExists},
		{Err: capability.ErrVoided, Code: connect.CodeFailedPrecondition},
	}
}
