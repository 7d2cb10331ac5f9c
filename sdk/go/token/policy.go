package token

import (
	"context"
	"slices"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// SignatureSize is the length in bytes of every signature of tokenrelay's
// own algorithms: 64, an Ed25519 signature or an ES256 r || s. An RS256 or
// PS256 signature of a foreign access token is as long as its key's
// modulus, 256 to 512 bytes.
const SignatureSize = 64

// typPrefix is the media-type prefix a typ header may carry (RFC 7515
// section 4.1.9): "application/at+jwt" is "at+jwt".
const typPrefix = "application/"

// Kinds returns every kind of token, in the order Access, Transaction,
// Checkout, Confirmation, Workload, Assertion: for tools that choose a kind by name or
// typ at run time (the operator command). Services name their kinds.
func Kinds() []AnyKind {
	return []AnyKind{Access, Transaction, Checkout, Confirmation, Workload, Assertion}
}

// KindOf returns the kind whose typ header value is typ, as a Verifier
// matches it: with or without the "application/" prefix, in any letter
// case (a media type).
func KindOf(typ string) (AnyKind, bool) {
	for _, k := range Kinds() {
		if typIs(typ, k.Typ()) {
			return k, true
		}
	}
	return nil, false
}

// HeaderParameters returns the only JOSE header parameters a Verifier
// accepts from tokenrelay's own issuers: alg, kid and typ. Any other (jku,
// x5u, jwk, x5c, crit, b64, cty ...) fails with ErrHeader, so a token never
// names or carries its own key. A foreign issuer with a Profile may send
// others, which are ignored (see AccessProfile).
func HeaderParameters() []string { return slices.Clone(headerNames) }

// RefusedHeaderParameters returns the header parameters refused from every
// issuer, foreign providers included: jku, x5u, jwk, x5c (a token never
// points at or carries its own key), crit (no extension is understood),
// b64, cty, enc and zip.
func RefusedHeaderParameters() []string { return slices.Clone(refusedHeaders) }

// SupportedAlgorithms returns every alg a Verifier can accept from
// tokenrelay's own issuers: keys.EdDSA and keys.ES256 (Algorithms chooses
// among them per issuer). none and HMAC never are; RS256 and PS256 only
// from a foreign issuer of access tokens (Profile).
func SupportedAlgorithms() []string { return []string{keys.EdDSA, keys.ES256} }

// VerifyAny is Verify for a kind chosen at run time: the claims are
// returned as the kind's claims type (AccessClaims, ...) in an any, nil on
// error. Services use the typed Verify.
func VerifyAny(ctx context.Context, v *Verifier, k AnyKind, raw string) (any, error) {
	return k.verifyAny(ctx, v, raw)
}
