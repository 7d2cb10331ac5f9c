// Package jwks caches the JWK Sets of remote token issuers for verifiers.
//
// A [Cache] knows each issuer by the iss of its tokens and the URL of its
// /.well-known/jwks.json ([Cache.Add]); the key source Add returns goes to
// token.Trust, so a token's kid is only ever looked up in its own issuer's
// set. Keys are held in ristretto, keyed by issuer and kid (with Wait after
// every write so that a key is visible as soon as it is fetched), backed by
// the last good set of each issuer, which stays authoritative because
// ristretto may drop writes.
//
// Behaviour and defaults (each has an option):
//
//   - [Cache.Run] refetches every set hourly ([DefaultRefreshInterval]).
//     Without Run, sets are fetched on demand only.
//   - An unknown kid triggers at most one fetch per issuer every five
//     minutes ([DefaultRefetchInterval]), shared by all concurrent callers
//     (single flight), so a flood of tokens with made-up kids costs the
//     issuer one request.
//   - A failed fetch keeps the last good set, which is served for up to 24
//     hours after its last successful fetch ([DefaultMaxStaleness]); after
//     that lookups fail with [ErrStale], which wraps keys.ErrUnavailable.
//     While the issuer's last fetch has failed, a kid missing from the last
//     good set also fails with keys.ErrUnavailable rather than
//     keys.ErrKeyNotFound: it may be a key published since, so the token
//     is not known to be bad (no extra fetch is made for it).
//   - Each fetch is bounded by a 10 s timeout ([DefaultFetchTimeout]) and a
//     64 KiB body ([DefaultMaxResponseSize], [ErrTooLarge]); redirects to
//     another scheme or host are refused ([ErrRedirect]).
//   - Sets are parsed strictly by keys.ParseJWKS: a malformed set is refused
//     whole and the last good set stays.
//
// The clock ([WithClock]) and the HTTP client ([WithHTTPClient]) are
// injectable for tests.
package jwks
