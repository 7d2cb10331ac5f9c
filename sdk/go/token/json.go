package token

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The decoder below is a strict, allocation-lean reader for the small JSON
// objects in a JWS header and claims set. It exists instead of
// encoding/json because encoding/json matches member names case-insensitively
// and keeps the last of duplicate members, which lets two parsers read two
// different tokens out of the same bytes, and because reflection would cost
// more than the rest of verification besides the signature.

// maxDepth bounds nesting, so that a hostile claim cannot make skip recurse
// deeply. The claims this package reads nest at most two levels.
const maxDepth = 16

var (
	errSyntax    = fmt.Errorf("%w: invalid JSON", ErrMalformed)
	errDepth     = fmt.Errorf("%w: JSON nested deeper than %d", ErrMalformed, maxDepth)
	errUTF8      = fmt.Errorf("%w: string is not valid UTF-8", ErrMalformed)
	errWrongType = fmt.Errorf("%w: wrong JSON type", ErrClaims)
	errNotInt    = fmt.Errorf("%w: not an integer within range", ErrClaims)
)

type decoder struct {
	b     []byte
	s     string // optional copy of b: string values are sliced from it instead of allocated one by one
	i     int
	depth int
	err   error // set by more on a syntax error
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// typeErr reports a value that is valid JSON of another type as errWrongType
// and anything else as a syntax error, so that the outcome does not depend on
// which reader met the bytes first.
func (d *decoder) typeErr() error {
	if d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"' || c == '{' || c == '[' || c == '-' || (c >= '0' && c <= '9'):
			return errWrongType
		case bytes.HasPrefix(d.b[d.i:], []byte("true")), bytes.HasPrefix(d.b[d.i:], []byte("false")), bytes.HasPrefix(d.b[d.i:], []byte("null")):
			return errWrongType
		}
	}
	return errSyntax
}

// open consumes the opening delimiter c ('{' or '[').
func (d *decoder) open(c byte) error {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != c {
		return d.typeErr()
	}
	d.i++
	d.depth++
	if d.depth > maxDepth {
		return errDepth
	}
	return nil
}

// member advances to the next member of an object opened with open('{'). It
// returns the member name, unescaped, or ok == false after the closing brace.
func (d *decoder) member(first *bool) (name []byte, ok bool, err error) {
	if !d.more(first, '}') {
		return nil, false, d.err
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false, errSyntax
	}
	name, err = d.str()
	if err != nil {
		return nil, false, err
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		return nil, false, errSyntax
	}
	d.i++
	return name, true, nil
}

// element advances to the next element of an array opened with open('[').
func (d *decoder) element(first *bool) (bool, error) {
	if !d.more(first, ']') {
		return false, d.err
	}
	return true, nil
}

// more consumes a separator or the closing delimiter; on a syntax error it
// returns false and leaves the error in d.err.
func (d *decoder) more(first *bool, closing byte) bool {
	d.err = nil
	d.ws()
	if d.i >= len(d.b) {
		d.err = errSyntax
		return false
	}
	if d.b[d.i] == closing {
		d.i++
		d.depth--
		return false
	}
	if *first {
		*first = false
		return true
	}
	if d.b[d.i] != ',' {
		d.err = errSyntax
		return false
	}
	d.i++
	return true
}

// str reads a string. The result aliases the input unless the string has
// escapes, so callers copy it (string(b)) before keeping it.
func (d *decoder) str() ([]byte, error) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, d.typeErr()
	}
	d.i++
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			// Validate UTF-8 only when a non-ASCII byte was seen: claim
			// values are nearly always ASCII.
			if !ascii && !utf8.Valid(s) {
				return nil, errUTF8
			}
			return s, nil
		case c == '\\':
			return d.unescape(start)
		case c < 0x20:
			return nil, errSyntax
		case c >= 0x80:
			ascii = false
		}
		d.i++
	}
	return nil, errSyntax
}

// unescape finishes a string that has an escape at d.i.
func (d *decoder) unescape(start int) ([]byte, error) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return nil, errUTF8
			}
			return out, nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return nil, errSyntax
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, errSyntax
			}
			if utf16.IsSurrogate(r) {
				// A lone surrogate has no UTF-8 encoding; refuse it rather
				// than substitute U+FFFD as encoding/json does.
				if d.i+1 >= len(d.b) || d.b[d.i] != '\\' || d.b[d.i+1] != 'u' {
					return nil, errUTF8
				}
				d.i += 2
				r2, ok := d.hex4()
				if !ok {
					return nil, errSyntax
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return nil, errUTF8
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}

// string reads a string value into a Go string, a substring of d.s when
// the value has no escapes (an escape always decodes to fewer bytes than it
// occupies, so equal lengths mean none).
func (d *decoder) string() (string, error) {
	d.ws()
	start := d.i
	b, err := d.str()
	if err != nil {
		return "", err
	}
	if d.s != "" && len(b) == d.i-start-2 {
		return d.s[start+1 : d.i-1], nil
	}
	return string(b), nil
}

// int reads an integer in [lo, hi]. Fractions and exponents are refused, so
// that "exp": 1e400 or 1.5 never becomes a time by rounding.
func (d *decoder) int(lo, hi int64) (int64, error) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits {
		d.i = start
		return 0, d.typeErr()
	}
	if d.b[digits] == '0' && d.i-digits > 1 {
		return 0, errSyntax // leading zeros are not JSON
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, errNotInt
	}
	// At most 16 digits are accepted, so n cannot overflow; every bound in
	// use is below 10^16.
	if d.i-digits > 16 {
		return 0, errNotInt
	}
	var n int64
	for _, c := range d.b[digits:d.i] {
		n = n*10 + int64(c-'0')
	}
	if d.b[start] == '-' {
		n = -n
	}
	if n < lo || n > hi {
		return 0, errNotInt
	}
	return n, nil
}

// numericDate reads a NumericDate (RFC 7519 2): a JSON number of seconds
// in [0, numericDateMax], with a fraction or an exponent if need be, as
// whole seconds, rounded up when ceil is set and down otherwise. A value
// out of range (1e400, a negative one) is errNotInt.
func (d *decoder) numericDate(ceil bool) (int64, error) {
	d.ws()
	start := d.i
	if d.i >= len(d.b) || (d.b[d.i] != '-' && (d.b[d.i] < '0' || d.b[d.i] > '9')) {
		return 0, d.typeErr()
	}
	if err := d.number(); err != nil {
		return 0, err
	}
	// At most 32 bytes: every date up to numericDateMax, with a fraction
	// of up to nanoseconds, fits; longer is garbage, not a date.
	if d.i-start > 32 {
		return 0, errNotInt
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > numericDateMax {
		return 0, errNotInt
	}
	if ceil {
		return int64(math.Ceil(f)), nil
	}
	return int64(math.Floor(f)), nil
}

// strings reads an array of at most limit strings.
func (d *decoder) strings(limit int) ([]string, error) {
	if err := d.open('['); err != nil {
		return nil, err
	}
	var out []string
	for first := true; ; {
		ok, err := d.element(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		if len(out) == limit {
			return nil, fmt.Errorf("%w: more than %d elements", ErrTooLarge, limit)
		}
		s, err := d.string()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// stringMap reads an object of at most limit string members, refusing
// duplicate names.
func (d *decoder) stringMap(limit int) (map[string]string, error) {
	if err := d.open('{'); err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		if len(out) == limit {
			return nil, fmt.Errorf("%w: more than %d members", ErrTooLarge, limit)
		}
		if _, dup := out[string(name)]; dup {
			return nil, ErrDuplicateName
		}
		k := string(name)
		if out[k], err = d.string(); err != nil {
			return nil, err
		}
	}
}

// skip validates and discards one value of any type.
func (d *decoder) skip() error {
	d.ws()
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		if err := d.open('{'); err != nil {
			return err
		}
		for first := true; ; {
			_, ok, err := d.member(&first)
			if err != nil || !ok {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		if err := d.open('['); err != nil {
			return err
		}
		for first := true; ; {
			ok, err := d.element(&first)
			if err != nil || !ok {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(d.b[d.i:], []byte(lit)) {
				d.i += len(lit)
				return nil
			}
		}
		return errSyntax
	}
}

// number consumes a JSON number of any form.
func (d *decoder) number() error {
	if d.b[d.i] == '-' {
		d.i++
	}
	intStart := d.i
	d.digits()
	if d.i == intStart || (d.b[intStart] == '0' && d.i-intStart > 1) {
		return errSyntax
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if !d.digits() {
			return errSyntax
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return errSyntax
		}
	}
	return nil
}

func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// end checks that nothing but whitespace follows the top-level value.
func (d *decoder) end() error {
	d.ws()
	if d.i != len(d.b) {
		return errSyntax
	}
	return nil
}

// names is a bounded set of member names seen so far that are not in the
// caller's known list, for duplicate detection.
type names struct{ seen [][]byte }

func (n *names) add(name []byte) error {
	for _, s := range n.seen {
		if bytes.Equal(s, name) {
			return ErrDuplicateName
		}
	}
	n.seen = append(n.seen, name)
	return nil
}

// foldsTo reports whether name spells one of known in another letter case
// (including Unicode folds such as the Kelvin sign for "k").
func foldsTo(name []byte, known []string) bool {
	for _, k := range known {
		if bytes.EqualFold(name, []byte(k)) {
			return true
		}
	}
	return false
}

// encoder writes the JSON objects of tokens this package issues. Strings are
// escaped so that the output is valid JSON for any valid UTF-8 input;
// invalid UTF-8 is refused instead of being replaced.
type encoder struct {
	b     []byte
	comma bool
	err   error
}

func (e *encoder) name(n string) {
	if e.comma {
		e.b = append(e.b, ',')
	}
	e.comma = true
	e.b = appendString(e.b, n)
	e.b = append(e.b, ':')
}

func (e *encoder) str(n, v string) {
	if v == "" {
		return
	}
	e.name(n)
	e.value(v)
}

func (e *encoder) value(v string) {
	if !utf8.ValidString(v) {
		e.err = fmt.Errorf("%w: claim value is not valid UTF-8", ErrClaims)
	}
	e.b = appendString(e.b, v)
}

func (e *encoder) int(n string, v int64) {
	e.name(n)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *encoder) strs(n string, v []string) {
	if len(v) == 0 {
		return
	}
	e.name(n)
	e.b = append(e.b, '[')
	for i, s := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.value(s)
	}
	e.b = append(e.b, ']')
}

// strMap writes m with sorted names, so that a token's bytes do not depend on
// map iteration order.
func (e *encoder) strMap(n string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	e.name(n)
	e.b = append(e.b, '{')
	inner := encoder{b: e.b}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		inner.name(k)
		inner.value(m[k])
	}
	e.b = append(inner.b, '}')
	e.err = errors.Join(e.err, inner.err)
}

func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
