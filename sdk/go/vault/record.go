package vault

import (
	"database/sql/driver"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// b64 returns the record encoding's base64: URL-safe, unpadded, and strict
// about trailing bits, so that every record has exactly one text form.
func b64() *base64.Encoding { return base64.RawURLEncoding.Strict() }

// maxEncodedLen bounds the text form of a record; longer input is refused
// before any decoding. It is the longest ciphertext's unpadded base64
// length plus room for the version and nonce.
const maxEncodedLen = ((MaxPlaintextSize+tagSize)*8+5)/6 + 64

// Record is one encrypted value: the version of the key that sealed it, the
// GCM nonce, and the ciphertext with its tag.
type Record struct {
	Version    uint32
	Nonce      []byte
	Ciphertext []byte
}

// Encode returns the text form "v<version>.<nonce>.<ciphertext>".
func (r Record) Encode() string {
	enc := b64()
	var b strings.Builder
	b.Grow(12 + enc.EncodedLen(len(r.Nonce)) + enc.EncodedLen(len(r.Ciphertext)))
	b.WriteByte('v')
	b.WriteString(strconv.FormatUint(uint64(r.Version), 10))
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(r.Nonce))
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(r.Ciphertext))
	return b.String()
}

// ParseRecord decodes the text form of a record. It checks the shape (a
// version of at least 1, a 96-bit nonce, a ciphertext at least as long as a
// GCM tag and within [MaxPlaintextSize]) and returns [ErrMalformedRecord]
// otherwise; whether the record decrypts is for [Keyring.Decrypt] to say.
func ParseRecord(s string) (Record, error) {
	if len(s) > maxEncodedLen {
		return Record{}, fmt.Errorf("%w: %d bytes", ErrMalformedRecord, len(s))
	}
	rest, ok := strings.CutPrefix(s, "v")
	if !ok {
		return Record{}, fmt.Errorf("%w: no version prefix", ErrMalformedRecord)
	}
	ver, rest, ok1 := strings.Cut(rest, ".")
	nonce, ct, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return Record{}, fmt.Errorf("%w: want three dot-separated parts", ErrMalformedRecord)
	}
	version, err := parseVersion(ver)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrMalformedRecord, err)
	}
	// The decoder skips CR and LF; refusing them keeps the encoding
	// canonical (one text per record).
	if !isBase64URL(nonce) || !isBase64URL(ct) {
		return Record{}, fmt.Errorf("%w: characters outside base64url", ErrMalformedRecord)
	}
	enc := b64()
	r := Record{Version: version}
	if r.Nonce, err = enc.DecodeString(nonce); err != nil {
		return Record{}, fmt.Errorf("%w: nonce is not base64url", ErrMalformedRecord)
	}
	if r.Ciphertext, err = enc.DecodeString(ct); err != nil {
		return Record{}, fmt.Errorf("%w: ciphertext is not base64url", ErrMalformedRecord)
	}
	if err := r.check(); err != nil {
		return Record{}, err
	}
	return r, nil
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// check validates the shape of r, so that a Record built by hand cannot
// reach GCM (which panics on a nonce of the wrong size).
func (r Record) check() error {
	switch {
	case r.Version == 0:
		return fmt.Errorf("%w: version 0", ErrMalformedRecord)
	case len(r.Nonce) != nonceSize:
		return fmt.Errorf("%w: nonce of %d bytes, want %d", ErrMalformedRecord, len(r.Nonce), nonceSize)
	case len(r.Ciphertext) < tagSize:
		return fmt.Errorf("%w: ciphertext shorter than the GCM tag", ErrMalformedRecord)
	case len(r.Ciphertext) > MaxPlaintextSize+tagSize:
		return fmt.Errorf("%w: ciphertext of %d bytes", ErrMalformedRecord, len(r.Ciphertext))
	}
	return nil
}

// parseVersion accepts a canonical decimal key version: 1 to 2^32-1, no
// sign, no leading zero.
func parseVersion(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 || s[0] == '0' || s[0] == '+' {
		return 0, fmt.Errorf("key version %q is not a decimal from 1 to %d", truncate(s), uint32(1<<32-1))
	}
	return uint32(v), nil
}

// truncate shortens untrusted text quoted in an error.
func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// MarshalText implements encoding.TextMarshaler with [Record.Encode].
func (r Record) MarshalText() ([]byte, error) { return []byte(r.Encode()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseRecord].
func (r *Record) UnmarshalText(text []byte) error {
	rec, err := ParseRecord(string(text))
	if err != nil {
		return err
	}
	*r = rec
	return nil
}

// Value implements driver.Valuer: a record is stored as its text form.
func (r Record) Value() (driver.Value, error) { return r.Encode(), nil }

// Scan implements sql.Scanner for a column holding a record's text form
// (TEXT, VARCHAR or BLOB).
func (r *Record) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return r.UnmarshalText([]byte(v))
	case []byte:
		return r.UnmarshalText(v)
	default:
		return fmt.Errorf("%w: cannot scan %T", ErrMalformedRecord, src)
	}
}
