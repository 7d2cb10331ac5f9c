package token

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Sentinel errors. Every error from Verify and Issue wraps exactly one of
// them (key lookups wrap keys.ErrKeyNotFound or keys.ErrUnavailable
// instead), together with a note of which check failed. No error ever
// contains the token or any part of it, so errors may be logged.
var (
	// ErrTooLarge: the token, a segment, or a claim array or object exceeds
	// its size limit. Checked before any decoding.
	ErrTooLarge = errors.New("token too large")
	// ErrMalformed: not three base64url segments of the strict alphabet
	// without padding, or a header or claims set that is not one valid,
	// UTF-8, bounded-depth JSON object.
	ErrMalformed = errors.New("token malformed")
	// ErrDuplicateName: a header parameter or claim appears twice (after
	// unescaping), or a claim name is spelled in another letter case than its
	// registered name ("EXP").
	ErrDuplicateName = errors.New("token has a duplicate or case-variant member name")
	// ErrHeader: a header parameter other than alg, kid and typ (jku, x5u,
	// jwk, x5c, crit, b64, cty ...), or one that is not a string.
	ErrHeader = errors.New("token header parameter not allowed")
	// ErrAlgorithm: alg is not one the issuer's policy accepts (none, HS*,
	// RS*, PS* never are), or it is not the algorithm of the key the kid
	// names.
	ErrAlgorithm = errors.New("token algorithm not allowed")
	// ErrKeyID: kid missing, empty or longer than 256 bytes.
	ErrKeyID = errors.New("token key id missing or invalid")
	// ErrType: typ missing or not the expected kind, or a kind the issuer is
	// not trusted to issue.
	ErrType = errors.New("token type not accepted")
	// ErrIssuer: iss missing or not a trusted issuer (or, when issuing, not
	// the issuer's own name).
	ErrIssuer = errors.New("token issuer not trusted")
	// ErrClaims: a claim has the wrong JSON type or an invalid value, or a
	// claim the kind requires is missing.
	ErrClaims = errors.New("token claims invalid")
	// ErrExpired: now is after exp plus the leeway.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: nbf or iat is after now plus the leeway.
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrLifetime: exp - iat is not positive or exceeds the kind's maximum.
	ErrLifetime = errors.New("token lifetime exceeds the maximum for its kind")
	// ErrAudience: aud missing or not containing the audience the verifier
	// accepts for this issuer and kind.
	ErrAudience = errors.New("token audience not accepted")
	// ErrCapability: a capability outside the namespace its issuer may
	// grant, whatever the signature.
	ErrCapability = errors.New("token capability outside the issuer's namespace")
	// ErrSignature: the signature segment is not 64 bytes or does not verify.
	ErrSignature = errors.New("token signature invalid")
	// ErrReplayed: the token's (iss, jti) was already consumed. The replay
	// package returns it (as replay.ErrReplayed); it lives here so that
	// mapping it needs no database code.
	ErrReplayed = errors.New("token already used")
	// ErrConfig: an Issuer or Verifier was given an invalid option.
	ErrConfig = errors.New("token: invalid configuration")
)

// ErrorOption adjusts ConnectError.
type ErrorOption func(*errorSettings)

type errorSettings struct{ argument bool }

// AsArgument maps token defects for a token that is an argument of the call
// rather than the caller's credential, such as the confirmation tokens of
// PlaceOrder: an expired or not-yet-valid token becomes FailedPrecondition
// (the client should obtain a fresh one), every other defect
// InvalidArgument.
func AsArgument() ErrorOption { return func(s *errorSettings) { s.argument = true } }

// ConnectError maps an error from this package, keys, jwks or replay to a
// Connect error whose message is fixed text naming the failed check (the
// sentinel's text), so that it is safe to return to clients:
//
//   - a token defect (any sentinel of this package but ErrConfig, and
//     keys.ErrKeyNotFound): Unauthenticated, or with AsArgument
//     FailedPrecondition / InvalidArgument;
//   - ErrReplayed (replay.ErrReplayed): AlreadyExists;
//   - keys.ErrUnavailable (an issuer's keys cannot be fetched): Unavailable;
//   - context cancellation and deadline: Canceled, DeadlineExceeded;
//   - a *connect.Error: returned unchanged; nil: nil;
//   - anything else: Internal with a generic message (log the original).
//
// errors.Is(result, sentinel) still holds for the mapped sentinel.
func ConnectError(err error, opts ...ErrorOption) *connect.Error {
	if err == nil {
		return nil
	}
	var s errorSettings
	for _, o := range opts {
		o(&s)
	}
	if ce, ok := errors.AsType[*connect.Error](err); ok {
		return ce
	}
	switch {
	case errors.Is(err, ErrReplayed):
		return connect.NewError(connect.CodeAlreadyExists, ErrReplayed)
	case errors.Is(err, keys.ErrUnavailable):
		return connect.NewError(connect.CodeUnavailable, keys.ErrUnavailable)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded)
	}
	defects := []error{
		ErrTooLarge, ErrMalformed, ErrDuplicateName, ErrHeader, ErrAlgorithm, ErrKeyID, ErrType,
		ErrIssuer, ErrClaims, ErrExpired, ErrNotYetValid, ErrLifetime, ErrAudience, ErrCapability,
		ErrSignature, keys.ErrKeyNotFound,
	}
	for _, d := range defects {
		if !errors.Is(err, d) {
			continue
		}
		code := connect.CodeUnauthenticated
		if s.argument {
			code = connect.CodeInvalidArgument
			if d == ErrExpired || d == ErrNotYetValid {
				code = connect.CodeFailedPrecondition
			}
		}
		return connect.NewError(code, d)
	}
	return connect.NewError(connect.CodeInternal, errors.New("token: internal error"))
}
