// Package idempotency reads the idempotency key of a mutating RPC.
//
// Every mutating RPC of tokenrelay takes an idempotency key, in its
// idempotency_key field or in the Idempotency-Key header, and a retry with
// the same key returns the first result. Services keep the key with the
// record the request created (a unique index per user and key), so the
// record and the key commit together; this package only reads and checks
// the key so that every service accepts the same ones.
package idempotency

import (
	"errors"
	"fmt"
	"net/http"
)

// Header is the HTTP header that may carry the key.
const Header = "Idempotency-Key"

// MaxLen bounds a key, in bytes.
const MaxLen = 128

// ErrInvalid reports a malformed key, or a field and a header that disagree.
// Connect code: InvalidArgument.
var ErrInvalid = errors.New("idempotency key is invalid")

// Key returns the request's key: field when set, else the header. Both set
// must agree. A key is 1 to MaxLen bytes of printable ASCII (a UUID, a ULID,
// or any client-chosen string); "" means the request carries none.
func Key(field string, h http.Header) (string, error) {
	header := h.Get(Header)
	if field != "" && header != "" && field != header {
		return "", fmt.Errorf("%w: the idempotency_key field and the %s header differ", ErrInvalid, Header)
	}
	key := field
	if key == "" {
		key = header
	}
	if len(key) > MaxLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	for i := range len(key) {
		if key[i] < 0x21 || key[i] > 0x7e {
			return "", fmt.Errorf("%w: only printable ASCII without spaces is allowed", ErrInvalid)
		}
	}
	return key, nil
}

// Require is Key for RPCs whose key is mandatory.
func Require(field string, h http.Header) (string, error) {
	key, err := Key(field, h)
	if err == nil && key == "" {
		err = fmt.Errorf("%w: required (idempotency_key field or %s header)", ErrInvalid, Header)
	}
	return key, err
}
