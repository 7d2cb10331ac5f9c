// Package jwks caches the JWK Sets of remote token issuers for verifiers.
//
// A [Cache] knows each issuer by the iss of its tokens and the URLs of its
// /.well-known/jwks.json ([Cache.Add]); the key source Add returns goes to
// token.Trust, so a token's kid is only ever looked up in its own issuer's
// set. Keys are held in ristretto, keyed by issuer and kid (with Wait after
// every write so that a key is visible as soon as it is fetched), backed by
// the last good set of each issuer, which stays authoritative because
// ristretto may drop writes.
//
// Behaviour and defaults (each has an option):
//
//   - URLs are https. Plain http is accepted only to a loopback host
//     (127.0.0.0/8, ::1, localhost), whose traffic never leaves the
//     machine, unless [AllowInsecureHTTP], which logs a warning for each
//     such URL: over plain HTTP anyone on the path can replace the keys.
//     Redirects to another scheme or host are refused ([ErrRedirect]).
//   - An issuer may have several URLs of one set (replicas sharing a key
//     ring). A fetch tries them in turn, starting with the one that
//     answered last, until one gives a usable set; it fails only if all
//     fail.
//   - [Cache.Run] refetches every set hourly ([DefaultRefreshInterval]).
//     Without Run, sets are fetched on demand only.
//   - A fetch fails if the request fails or times out (10 s per URL,
//     [DefaultFetchTimeout]), the status is not 200, the body exceeds 64
//     KiB ([DefaultMaxResponseSize], [ErrTooLarge]), keys.ParseJWKS refuses
//     the set (not JSON, ambiguous, private key material), or the set has
//     no key the verifier can use ([ErrNoUsableKeys]: empty, or only keys
//     of other types or uses). Members the verifier cannot use are ignored,
//     the others used (RFC 7517 section 5). A failed fetch never replaces
//     the last good set; answers refused for their content are counted
//     ([Cache.Refused]) and logged, without their content.
//   - After a failed fetch (or none yet succeeded), a lookup may fetch the
//     issuer again once per [DefaultRetryMin] (1 s, single flight), not on
//     the unknown-kid interval, so that keys are back within a second of
//     the issuer's return while anyone asks; without lookups, Run retries
//     on a backoff from 1 s doubling to 30 s ([DefaultRetryMax]), each
//     delay jittered down to half.
//   - The last good set is served for up to 24 hours after its last
//     successful fetch ([DefaultMaxStaleness]); after that lookups fail
//     with [ErrStale], which wraps keys.ErrUnavailable.
//   - A kid missing from a good set makes the issuer be fetched again at
//     most once every five seconds ([DefaultRefetchInterval], measured from
//     the start of its last fetch), in a single flight shared by every
//     waiting lookup, so a flood of tokens with made-up kids costs an
//     issuer at most 12 requests a minute. The kid is keys.ErrKeyNotFound
//     only once a fetch started after the kid was first seen (or one that
//     dropped it from the set) confirms it absent. Until then, and while
//     the issuer's last fetch has failed, it is keys.ErrUnavailable: it may
//     be a key published since the last fetch, and a genuine new key is
//     found within the refetch interval of its publication, not refused
//     for good. Up to 1,024 such kids are remembered per issuer; a kid
//     longer than 256 bytes is in no set and not fetched for.
//   - [Cache.Loaded] is a readiness check: nil once an issuer's set has
//     ever been fetched; until then each call fetches it (joining a fetch
//     in flight, ignoring the backoff that holds lookups back for a second
//     after a failure), so that a process reports ready only once it can
//     verify the issuer's tokens, and never flaps with the issuer after.
//   - [Cache.Fetches] counts requests (one per URL tried) by result, for
//     metrics.
//
// The clock ([WithClock]) and the HTTP client ([WithHTTPClient]) are
// injectable for tests.
package jwks
