// Package keys holds the signing keys of a token issuer and the public keys
// that verifiers trust.
//
// A [Ring] is one issuer's key ring: the current signing key, the next key
// (published in the JWKS before it signs anything, so that verifiers with a
// cached JWKS already know it when [Ring.Rotate] promotes it) and retired keys
// (still published, so that tokens they signed keep verifying, until the
// retention period has passed; then they are pruned). Every key is identified
// by its RFC 7638 JWK thumbprint, which is the "kid" of every token it signs.
//
// Ed25519 ("EdDSA") is the default algorithm; ECDSA P-256 ("ES256") is
// supported for interoperability. RSA keys ("RS256", "PS256") are never
// produced, but are accepted as verification keys ([NewRSAPublicKey],
// [ParseJWKS]) for the access tokens of foreign OpenID Connect providers,
// which sign with RSA (RFC 9068 section 2.1 requires RS256 of every
// resource server): 2048 to 4096 bits, verified by crypto/rsa. HMAC keys
// are never accepted. A [PublicKey] is bound to exactly one algorithm, so a
// verifier can never be tricked into using a key with another algorithm
// than the one it was published for.
//
// A Ring persists to a directory that only its owner may read: [OpenRing]
// creates the directory with mode 0700 and the key file with mode 0600, and
// refuses ([ErrInsecurePermissions]) to load a directory or key file that
// group or others can access, rather than silently fixing the mode, because a
// key that was readable by others must be treated as leaked and rotated.
//
// A Ring serves its public keys at [WellKnownPath] through [Ring.Handler] and
// is itself a [Source], so that a verifier in the same process (the embedded
// deployment) needs no HTTP round trip. Verifiers of remote issuers use the
// jwks package, which parses key sets with [ParseJWKS]: a set that is not
// valid JSON, is ambiguous or holds private key material is refused whole;
// a member this package cannot use (another key type, curve, use or alg, or
// a malformed key) is ignored and the others are used (RFC 7517 section 5).
package keys
