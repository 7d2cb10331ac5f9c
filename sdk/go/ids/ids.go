// Package ids makes the prefixed random identifiers tokenrelay uses for every
// record and token: "op_" for checkouts, "ord_" for orders, a bare one for a
// jti, and so on.
//
// An id carries 128 bits from crypto/rand, encoded in lower-case base32
// without padding (26 characters), so ids are unguessable, URL- and
// log-safe, and the prefix tells a reader what an id names.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 random characters, or the random part alone
// when prefix is empty.
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: Go 1.24+ crashes the program instead
	s := strings.ToLower(encoding.EncodeToString(b[:]))
	if prefix == "" {
		return s
	}
	return prefix + "_" + s
}

// Valid reports whether id has the given prefix and a well-formed random
// part, so handlers can refuse malformed ids before touching a store.
func Valid(prefix, id string) bool {
	if prefix != "" {
		if !strings.HasPrefix(id, prefix+"_") {
			return false
		}
		id = id[len(prefix)+1:]
	}
	if len(id) != 26 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
