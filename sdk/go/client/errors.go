package client

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
)

// Kind is what a program switches on after a failed call; every Connect code
// maps to exactly one (KindOf), as the TypeScript SDK's ErrorKind.
type Kind string

// The kinds.
const (
	// KindUnauthenticated: no session, a session that could not be
	// refreshed (then Error.SessionEnded: log in again), or another
	// credential of the call no longer good, such as an expired checkout
	// token.
	KindUnauthenticated Kind = "unauthenticated"
	// KindForbidden: not yours, or not allowed (PermissionDenied).
	KindForbidden Kind = "forbidden"
	// KindInvalid: bad input (InvalidArgument, OutOfRange).
	KindInvalid Kind = "invalid"
	// KindNotFound: an unknown coupon code or payment method (NotFound).
	KindNotFound Kind = "not_found"
	// KindConflict: a token or request already used (AlreadyExists,
	// Aborted).
	KindConflict Kind = "conflict"
	// KindRefused: a business refusal (FailedPrecondition,
	// ResourceExhausted): an expired checkout, a coupon no longer valid,
	// too few points, a declined card.
	KindRefused Kind = "refused"
	// KindUnavailable: a dependency or the network is down (Unavailable,
	// DeadlineExceeded); trying again later may work.
	KindUnavailable Kind = "unavailable"
	// KindCanceled: the caller gave up (Canceled, a context canceled).
	KindCanceled Kind = "canceled"
	// KindUnknown: anything else (Internal, Unknown, Unimplemented,
	// DataLoss).
	KindUnknown Kind = "unknown"
)

// KindOf maps a Connect code to its Kind.
func KindOf(code connect.Code) Kind {
	switch code {
	case connect.CodeUnauthenticated:
		return KindUnauthenticated
	case connect.CodePermissionDenied:
		return KindForbidden
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return KindInvalid
	case connect.CodeNotFound:
		return KindNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted:
		return KindConflict
	case connect.CodeFailedPrecondition, connect.CodeResourceExhausted:
		return KindRefused
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return KindUnavailable
	case connect.CodeCanceled:
		return KindCanceled
	}
	return KindUnknown
}

// ErrSessionEnded is wrapped by the error of every call once the session is
// gone: there was none, or a refresh was refused (the refresh token expired,
// was revoked or reused). Log in again.
var ErrSessionEnded = errors.New("your session has ended; log in again")

// Error is a failed call as a program sees it.
type Error struct {
	// Kind is what to switch on.
	Kind Kind
	// Code is the Connect code.
	Code connect.Code
	// Message is the server's message without the code; safe to show.
	Message string
	// SessionEnded is true when the session was cleared because it could
	// not be refreshed, or there was none: log in again.
	SessionEnded bool
	err          error
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Message }

// Unwrap returns the call's error (a *connect.Error).
func (e *Error) Unwrap() error { return e.err }

// AsError turns a call's error into an *Error; nil for nil. A context that
// ended is KindCanceled or KindUnavailable (deadline) whatever the transport
// made of it.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	code := connect.CodeOf(err)
	switch {
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	return &Error{Kind: KindOf(code), Code: code, Message: msg, SessionEnded: errors.Is(err, ErrSessionEnded), err: err}
}

// sessionEnded is the error of a call made without a usable session.
func sessionEnded(cause error) error {
	if cause == nil {
		return connect.NewError(connect.CodeUnauthenticated, ErrSessionEnded)
	}
	return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w (%w)", ErrSessionEnded, cause))
}
