// Package replay enforces one-time use of token identifiers (the JWT "jti").
//
// A ristretto cache is the fast path that turns most replays away before any
// database work; it is never the authority, because ristretto may drop writes
// under its admission policy and evict entries before their TTL. The authority
// is a durable unique record of (iss, jti) that the caller writes inside its
// own database transaction, next to the effect the token guards.
package replay

import "errors"

// ErrReplayed reports that a (iss, jti) pair was already consumed.
// Connect code: AlreadyExists.
var ErrReplayed = errors.New("replay: token already used")
