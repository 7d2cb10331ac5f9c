package token

import (
	"errors"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// ErrInvalid is the group of every token defect, in golang-jwt's idiom (its
// claim errors all wrap ErrTokenInvalidClaims): each sentinel below but
// ErrConfig wraps it. errors.Is(err,
// ErrInvalid) therefore reports whether a token was refused as such,
// whatever the check that failed, and a new sentinel is mapped wherever the
// group is; [Reason] names the check.
var ErrInvalid = errors.New("token invalid")

// Sentinel errors. Every error from Verify and Issue wraps exactly one of
// them (a key lookup whose keys are unavailable wraps keys.ErrUnavailable
// instead), together with a note of which check failed. No error ever
// contains the token or any part of it, so errors may be logged. Each
// sentinel but ErrConfig wraps ErrInvalid and has a [Reason].
var (
	// ErrTooLarge: the token, a segment, or a claim array or object exceeds
	// its size limit. Checked before any decoding.
	ErrTooLarge = defect("token too large", "too_large")
	// ErrMalformed: not three base64url segments of the strict alphabet
	// without padding, or a header or claims set that is not one valid,
	// UTF-8, bounded-depth JSON object.
	ErrMalformed = defect("token malformed", "malformed")
	// ErrDuplicateName: a header parameter or claim appears twice (after
	// unescaping), or a claim name is spelled in another letter case than its
	// registered name ("EXP"; allowed from a foreign issuer with a Profile,
	// where it is an unknown claim).
	ErrDuplicateName = defect("token has a duplicate or case-variant member name", "duplicate_name")
	// ErrHeader: a header parameter other than alg, kid and typ (jku, x5u,
	// jwk, x5c, crit, b64, cty ...), or one of them that is not a string.
	// A foreign issuer with a Profile may send other parameters, but never
	// jku, x5u, jwk, x5c, crit, b64, cty, enc or zip.
	ErrHeader = defect("token header parameter not allowed", "header")
	// ErrAlgorithm: alg is not EdDSA or ES256, nor for an access token
	// RS256 or PS256 (none and HS* never are), or a genuine token's alg is
	// not one its issuer's policy accepts. A key of another algorithm than
	// alg is ErrSignature.
	ErrAlgorithm = defect("token algorithm not allowed", "algorithm")
	// ErrKeyID: kid missing, empty or longer than 256 bytes.
	ErrKeyID = defect("token key id missing or invalid", "key_id")
	// ErrType: typ missing or not the expected kind, or a genuine token of
	// a kind its issuer is not trusted to issue.
	ErrType = defect("token type not accepted", "type")
	// ErrIssuer: when issuing, iss is not the Issuer's own name. Verify
	// reports an iss that is missing or names no trusted issuer as
	// ErrSignature: there is no key to check the signature with, and a
	// forger must not learn which issuers are trusted.
	ErrIssuer = defect("token issuer not trusted", "issuer")
	// ErrClaims: a claim has the wrong JSON type or an invalid value, or a
	// claim the kind requires is missing.
	ErrClaims = defect("token claims invalid", "claims")
	// ErrExpired: now is on or after exp plus the leeway (RFC 7519
	// 4.1.4). Only for a token whose signature verified.
	ErrExpired = defect("token expired", "expired")
	// ErrNotYetValid: nbf or iat is after now plus the leeway: a token is
	// valid on or after nbf (RFC 7519 4.1.5). Only for a token whose
	// signature verified, like every check of a claim's value below.
	ErrNotYetValid = defect("token not yet valid", "not_yet_valid")
	// ErrLifetime: exp - iat is not positive or exceeds the kind's maximum.
	ErrLifetime = defect("token lifetime exceeds the maximum for its kind", "lifetime")
	// ErrAudience: aud missing or not containing the audience the verifier
	// accepts for this issuer and kind.
	ErrAudience = defect("token audience not accepted", "audience")
	// ErrCapability: a capability outside the namespace its issuer may
	// grant.
	ErrCapability = defect("token capability outside the issuer's namespace", "capability")
	// ErrSignature: the signature segment is not 64 bytes (for RSA: not
	// 2048 to 4096 bits) or does not
	// verify with a key of the token's issuer. The caller cannot tell apart
	// its causes: iss missing or naming no trusted issuer, a kid the issuer
	// does not publish (the error wraps keys.ErrKeyNotFound too), a key of
	// another algorithm than alg, a bad signature; nor does it learn
	// anything of the claims of such a token.
	ErrSignature = defect("token signature invalid", "signature")
	// ErrReplayed: the token's (iss, jti) was already consumed. The replay
	// package returns it (as replay.ErrReplayed); it lives here so that
	// mapping it needs no database code.
	ErrReplayed = defect("token already used", "replayed")
	// ErrConfig: an Issuer or Verifier was given an invalid option. It is
	// a mistake of the caller, not of a token: it does not wrap ErrInvalid
	// and has no Reason.
	ErrConfig = errors.New("token: invalid configuration")
)

// Reasons of the key lookup errors, which package keys defines.
const (
	reasonUnknownKey      = "unknown_key"
	reasonKeysUnavailable = "keys_unavailable"
)

// defectError is a sentinel of a token defect: it wraps ErrInvalid and
// carries its reason.
type defectError struct{ msg, reason string }

func defect(msg, reason string) error { return &defectError{msg: msg, reason: reason} }

func (d *defectError) Error() string { return d.msg }

// Unwrap makes every defect an ErrInvalid.
func (d *defectError) Unwrap() error { return ErrInvalid }

// Reason returns the short, stable label of the check a token refusal
// failed, for metrics and logs: the sentinel it wraps in snake case
// ("expired", "signature", "audience", "replayed", ...), "unknown_key" for
// a key source's own keys.ErrKeyNotFound (Verify reports a kid its issuer
// does not publish as "signature"), "keys_unavailable" when the issuer's
// keys cannot be fetched
// (keys.ErrUnavailable); "" when err is no token refusal (nil, ErrConfig,
// any other error). Labels never change: dashboards count by them.
func Reason(err error) string {
	if d, ok := errors.AsType[*defectError](err); ok {
		return d.reason
	}
	switch {
	case errors.Is(err, keys.ErrKeyNotFound):
		return reasonUnknownKey
	case errors.Is(err, keys.ErrUnavailable):
		return reasonKeysUnavailable
	}
	return ""
}

// Sentinel returns the sentinel error a token refusal wraps: one of this
// package's (ErrExpired, ErrSignature, ...), keys.ErrKeyNotFound or
// keys.ErrUnavailable, else ErrInvalid for an error that wraps only the
// group; nil when err is no token refusal. Its text names the failed check
// and nothing else, so it may be shown to clients.
func Sentinel(err error) error {
	if d, ok := errors.AsType[*defectError](err); ok {
		return d
	}
	for _, s := range []error{keys.ErrKeyNotFound, keys.ErrUnavailable, ErrInvalid} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// lookupError is a key lookup of Verify that failed for another reason than
// a missing key (which Verify reports as ErrSignature): the issuer's keys
// are unavailable, or the context ended. It is no token defect: the token
// may be fine.
type lookupError struct{ err error }

func (e lookupError) Error() string { return "token: key lookup: " + e.err.Error() }

func (e lookupError) Unwrap() error { return e.err }
