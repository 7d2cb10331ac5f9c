// Package jwtpeers benchmarks the tokenrelay SDK verifier against common Go
// JWT libraries on the same confirmation tokens, in one run, next to the bare
// Ed25519 floor.
//
// Every contender fetches the issuer's keys once from the same JWKS endpoint
// (keyfunc and jwx through their own caches, go-jose through a parsed key
// set) and then checks, per token: the signature with the key named by kid,
// the algorithm pinned to EdDSA, typ, iss, aud, exp and iat with a leeway,
// and that every capability lies in the issuer's namespace. The SDK checks
// more (header allow-list, duplicate claims, lifetime bound, typed claims).
//
// Run with GOWORK=off from this directory:
//
//	go test -run='^$' -bench=. -benchmem -count=6
package jwtpeers
