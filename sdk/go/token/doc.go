// Package token issues and verifies the compact JWS tokens of tokenrelay:
// one engine for every kind.
//
// A [Kind] is a typ header, a claims type, the claims it requires and a
// maximum lifetime: [Access] (at+jwt, RFC 9068), [Transaction]
// (txntoken+jwt), [Checkout] (checkout+jwt), [Confirmation]
// (confirmation+jwt), [Workload] (wl+jwt) and [Assertion]
// (txn-assertion+jwt, a workload's subject token at the Txn-Token Service).
// An [Issuer] signs any kind with
// the current key of a keys.Ring; a [Verifier] checks any kind against the
// issuers it trusts:
//
//	iss, _ := token.NewIssuer("coupons", ring)
//	raw, claims, err := token.Issue(ctx, iss, token.Confirmation, token.ConfirmationClaims{...})
//
//	v, _ := token.NewVerifier(
//		token.Trust("coupons", couponsKeys, token.Accept(token.Confirmation, "order-processing"), token.Namespace("coupons")),
//		token.Trust("points", pointsKeys, token.Accept(token.Confirmation, "order-processing"), token.Namespace("points")),
//	)
//	claims, err := token.Verify(ctx, v, token.Confirmation, raw)
//
// The key source of a trusted issuer is a keys.Ring in the same process or a
// jwks.Cache source for an issuer reachable by URL.
//
// # Verification policy
//
// Verification is deliberately narrower than JWT allows (RFC 8725):
//
//   - Per issuer, an allow-list: the kinds it may issue and the audience each
//     must carry (Accept), the algorithms (Algorithms; EdDSA by default,
//     ES256 on request; none and HMAC never), the key source, and for
//     confirmation tokens the one capability namespace it may grant
//     (Namespace). A key is found only by kid in the token's own issuer's
//     source, and must be a key of the token's alg.
//   - The header of a token of tokenrelay's own issuers may hold alg, kid
//     and typ and nothing else: jku, x5u, jwk, x5c, crit, b64, cty and any
//     other parameter are refused, so a token can never point at or carry
//     its own key, and no parameter can change how a token is read (RFC
//     8725 3.11-3.12: explicit typing, and a verifier as strict as its
//     issuers allow; tokenrelay's issuers never write anything else).
//   - Size is checked before any decoding. Base64url must be canonical and
//     unpadded. JSON is parsed by a strict reader: one object, valid UTF-8,
//     bounded depth, each name exactly once and exactly as registered
//     ("EXP", or "exp" next to "exp", is refused), values of the right
//     type. A NumericDate may have a fraction or an exponent (RFC 7519 2);
//     exp is rounded down and iat and nbf up to whole seconds. typ is a
//     media type: compared case-insensitively, "application/" optional.
//   - exp and iat are required, iat and nbf may not lie in the future, exp -
//     iat is bounded by the kind, and the leeway is at most 30 seconds. A
//     token is expired on or after exp + leeway and valid on or after nbf -
//     leeway (RFC 7519 4.1.4, 4.1.5).
//   - The signature is checked before any claim is judged. Before it, only
//     the form of the token is (sizes, base64url, JSON, header parameters,
//     typ), by rules that are the same for every verifier; iss serves only to
//     find the key. Every way a token fails to authenticate (iss missing or
//     untrusted, a kid its issuer does not publish, a key of another
//     algorithm, a bad signature) is the one refusal ErrSignature, whatever
//     its claims say. So a forger learns nothing of the policy (which
//     issuers, kinds, algorithms, audiences and namespaces are trusted), a
//     forgery is never refused as "expired" (which tells a client to fetch
//     a fresh token and retry), and metrics count forgeries as signatures.
//     Only a genuine token learns which claim failed.
//   - On error, Verify returns the zero claims: nothing of a refused token
//     reaches the caller.
//
// # Foreign access tokens
//
// Access tokens may come from an OpenID Connect provider outside
// tokenrelay, which follows RFC 9068 loosely or not at all. Such an issuer
// is trusted with a [Profile] ([AccessProfile]): its typ values ("at+jwt"
// by default, "JWT" on request), RS256 and PS256 besides ES256 and EdDSA
// (RSA keys of 2048 to 4096 bits, verified by crypto/rsa), a lifetime of
// up to 24 hours, a leeway of up to 5 minutes, and where its scopes
// ("scope", "scp", "realm_access.roles"), subject and client id are. Its
// header parameters other than alg, kid and typ are ignored (RFC 7515 4),
// except those that carry or point at a key or need an extension (jku,
// x5u, jwk, x5c, crit, b64, cty, enc, zip), which are refused from every
// issuer; a claim name in another letter case than a registered one is an
// unknown claim. Since the issuer of an access token is known only from
// its claims, the form stage lets an access token through with what a
// profile may accept (other parameters, another typ, RSA, "EXP"), and
// after the signature a token of an issuer without a Profile is refused
// for it exactly as before: tokenrelay's own identity issuer keeps the
// strict rules.
//
// Tools read this policy from the package rather than copying it: [Kinds]
// and [KindOf] name the kinds, [HeaderParameters], [SupportedAlgorithms]
// and [SignatureSize] state what a header and a signature may be, and
// [VerifyAny] verifies a kind chosen at run time.
//
// Every failure wraps one exported sentinel (ErrExpired, ErrSignature, ...)
// and says which check failed, without echoing any part of the token. Every
// defect also wraps the group sentinel [ErrInvalid], and [Reason] gives its
// stable label for metrics. The package imports no RPC framework: rpcerr.Token
// maps these errors to Connect codes.
//
// # Verified-token cache
//
// A transaction token crosses every hop of a request unchanged. With
// [WithVerifiedCache] a Verifier keeps verified tokens in ristretto, keyed
// by their SHA-256, for no longer than the token lives; a hit re-checks
// expiry and kind and costs a hash and a lookup instead of a signature
// verification.
//
// # One-time use and binding
//
// Verification does not consume a token: callers that need one-time use
// (confirmation and checkout tokens) record (iss, jti) as the replay
// package describes, and map its ErrReplayed (this package's ErrReplayed)
// with rpcerr.Token.
//
// Workload tokens are not one-time. Each is bound to one call instead, as
// DPoP (RFC 9449) binds a proof to its htm and htu: proc names the
// procedure and req the digest of the request message (see
// [WorkloadClaims]), and package authn refuses a workload token that arrives
// with any other call. A captured token can then only repeat the identical
// call within its lifetime (2 minutes at most), which is harmless for the
// calls it guards; package authn says why.
package token
