package rpcerr

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// TokenOption adjusts Token.
type TokenOption func(*tokenSettings)

type tokenSettings struct{ argument bool }

// AsArgument maps token defects for a token that is an argument of the call
// rather than the caller's credential, such as the confirmation tokens of
// PlaceOrder: an expired or not-yet-valid token becomes FailedPrecondition
// (the client should obtain a fresh one), every other defect
// InvalidArgument.
func AsArgument() TokenOption { return func(s *tokenSettings) { s.argument = true } }

// Token maps an error of the token, keys, jwks or replay packages to a
// Connect error whose message is fixed text naming the failed check (the
// sentinel's text, token.Sentinel), so that it is safe to return to
// clients:
//
//   - token.ErrReplayed (replay.ErrReplayed): AlreadyExists;
//   - keys.ErrUnavailable (an issuer's keys cannot be fetched): Unavailable;
//   - context cancellation and deadline: Canceled, DeadlineExceeded;
//   - any other token defect (token.ErrInvalid, whichever sentinel, and
//     keys.ErrKeyNotFound): Unauthenticated, or with AsArgument
//     FailedPrecondition / InvalidArgument;
//   - a *connect.Error: returned unchanged; nil: nil;
//   - anything else: Internal with a generic message (log the original).
//
// errors.Is(result, sentinel) still holds for the mapped sentinel, for
// token.ErrInvalid, and for every error err wraps (for the server's own
// observers; none of their text reaches the client). token.Verify refuses
// every token that does not authenticate (untrusted issuer, unknown kid,
// bad signature) as token.ErrSignature, whatever its claims, so a forgery
// is never FailedPrecondition ("fetch a fresh token").
func Token(err error, opts ...TokenOption) *connect.Error {
	if err == nil {
		return nil
	}
	var s tokenSettings
	for _, o := range opts {
		o(&s)
	}
	if ce, ok := errors.AsType[*connect.Error](err); ok {
		return ce
	}
	switch {
	case errors.Is(err, token.ErrReplayed):
		return connect.NewError(connect.CodeAlreadyExists, token.ErrReplayed)
	case errors.Is(err, keys.ErrUnavailable):
		return connect.NewError(connect.CodeUnavailable, keys.ErrUnavailable)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded)
	}
	defect := token.Sentinel(err)
	if defect == nil {
		return connect.NewError(connect.CodeInternal, errors.New("token: internal error"))
	}
	code := connect.CodeUnauthenticated
	if s.argument {
		code = connect.CodeInvalidArgument
		if defect == token.ErrExpired || defect == token.ErrNotYetValid {
			code = connect.CodeFailedPrecondition
		}
	}
	return connect.NewError(code, refusal{defect: defect, err: err})
}

// refusal is what a mapped token refusal wraps: its text is the sentinel's
// alone, which reaches the client, while errors.Is still finds every error
// of the original chain for the server's own observers (metrics, logs), such
// as the keys.ErrKeyNotFound behind a signature refusal.
type refusal struct{ defect, err error }

func (r refusal) Error() string   { return r.defect.Error() }
func (r refusal) Unwrap() []error { return []error{r.defect, r.err} }
