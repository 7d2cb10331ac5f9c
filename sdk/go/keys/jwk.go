package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxJWKSKeys is the largest number of keys ParseJWKS accepts in one set. A
// ring publishes at most a handful; the bound stops a hostile set from making
// a verifier parse thousands of keys.
const MaxJWKSKeys = 100

// jwkMembers are the JWK member names this package interprets. A member that
// differs from one of them only in letter case is refused: some JSON decoders
// fold case, and two parsers must never read two different keys out of the
// same bytes.
var jwkMembers = []string{"kty", "crv", "x", "y", "n", "e", "d", "kid", "use", "alg", "key_ops"}

// ParseJWKS parses a JWK Set (RFC 7517 section 5) strictly and returns its
// usable verification keys, possibly none: what a set without usable keys
// means is the caller's decision.
//
// The whole set is refused (ErrMalformedKey) if it is not valid UTF-8 JSON,
// is not an object with a "keys" array, repeats a member name or spells a
// known one in another case (in the set or in any member), has more than
// MaxJWKSKeys members, gives two usable keys the same kid, or contains
// private key material ("d"): such a set is ambiguous (two parsers could
// read two different keys out of it) or comes from a broken issuer.
//
// An RSA key ("kty":"RSA", the keys of most OpenID Connect providers) is a
// verification key for "alg" RS256 or PS256, RS256 when its "alg" is absent
// (Entra ID publishes none; RFC 9068 section 2.1 makes RS256 the default).
// Its "n" and "e" must be unpadded base64url without leading zero octets
// (RFC 7518 section 6.3.1), the modulus MinRSABits to MaxRSABits long, the
// exponent odd and at least 3.
//
// A member this package cannot use is ignored and the others are used, as
// RFC 7517 section 5 asks, so that one odd key does not take down every
// key of its issuer: a member that is not an object; an unknown or
// unsupported "kty" (symmetric "oct", post-quantum) or curve; a "use"
// other than "sig"; "key_ops" without "verify"; an "alg" other than the
// one this package binds to the key type (EdDSA for Ed25519, ES256 for
// P-256, RS256 or PS256 for RSA), including unknown and fully-specified
// ones such as "Ed25519" (RFC 9864); and a key that is unusable as given:
// a member of the wrong JSON type, no kid or one over 256 bytes,
// coordinates that are not 32 bytes of unpadded base64url or not on the
// curve, an RSA key too short, too long or with a bad exponent. Members
// this package does not interpret (x5c, x5t, issuer ...) are ignored.
func ParseJWKS(data []byte) ([]*PublicKey, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrMalformedKey)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []*PublicKey
	seenKeys := false
	err := walkObject(dec, []string{"keys"}, func(name string) error {
		if name != "keys" {
			return skipValue(dec)
		}
		seenKeys = true
		if err := expectDelim(dec, '['); err != nil {
			return err
		}
		kids := make(map[string]bool)
		for n := 0; dec.More(); n++ {
			if n == MaxJWKSKeys {
				return fmt.Errorf("more than %d keys", MaxJWKSKeys)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return fmt.Errorf("key %d: %w", n, err)
			}
			k, err := parseJWK(raw)
			var u unusable
			if errors.As(err, &u) {
				continue
			}
			if err != nil {
				return fmt.Errorf("key %d: %w", n, err)
			}
			if kids[k.kid] {
				return fmt.Errorf("key %d: duplicate kid", n)
			}
			kids[k.kid] = true
			out = append(out, k)
		}
		return expectDelim(dec, ']')
	})
	if err == nil && !seenKeys {
		err = errors.New(`no "keys" member`)
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the key set")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: jwks: %w", ErrMalformedKey, err)
	}
	return out, nil
}

// ParseJWK parses one JWK with the rules of ParseJWKS, except that what a
// set ignores is an error here: ErrUnsupportedAlgorithm for a key that is
// not an Ed25519, P-256 or RSA signing key, ErrMalformedKey for one that is but
// cannot be used as given.
func ParseJWK(data []byte) (*PublicKey, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrMalformedKey)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the key")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: jwk: %w", ErrMalformedKey, err)
	}
	k, err := parseJWK(raw)
	var u unusable
	switch {
	case errors.As(err, &u) && u.unsupported:
		return nil, fmt.Errorf("%w: jwk is not an Ed25519, P-256 or RSA signing key: %s", ErrUnsupportedAlgorithm, u.reason)
	case err != nil:
		return nil, fmt.Errorf("%w: jwk: %w", ErrMalformedKey, err)
	}
	return k, nil
}

// unusable is why parseJWK cannot use a key that does not make its set
// ambiguous: a set ignores the key. unsupported: the key is not meant for
// this package (kty, curve, use, key_ops, alg); otherwise it claims to be
// but is broken.
type unusable struct {
	reason      string
	unsupported bool
}

func (u unusable) Error() string { return u.reason }

// parseJWK reads one JWK: the key, or an unusable error for a key to
// ignore, or another error for a member that refuses its whole set.
func parseJWK(raw json.RawMessage) (*PublicKey, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, unusable{reason: "not an object"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	m := make(map[string]json.RawMessage, 8)
	err := walkObject(dec, jwkMembers, func(name string) error {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if slices.Contains(jwkMembers, name) {
			m[name] = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := m["d"]; ok {
		return nil, errors.New("private key material in a public key set")
	}
	str := func(name string) (string, bool, error) {
		v, ok := m[name]
		if !ok {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", true, unusable{reason: "member " + name + " is not a string"}
		}
		return s, true, nil
	}
	s := make(map[string]string, len(m))
	for _, name := range []string{"kty", "crv", "x", "y", "n", "e", "kid", "use", "alg"} {
		v, ok, err := str(name)
		if err != nil {
			return nil, err
		}
		if ok {
			s[name] = v
		}
	}
	if use, ok := s["use"]; ok && use != "sig" {
		return nil, unusable{reason: "use is not sig", unsupported: true}
	}
	if v, ok := m["key_ops"]; ok {
		var ops []string
		if err := json.Unmarshal(v, &ops); err != nil {
			return nil, unusable{reason: "key_ops is not a list of strings"}
		}
		if !slices.Contains(ops, "verify") {
			return nil, unusable{reason: "key_ops without verify", unsupported: true}
		}
	}
	var alg string
	switch {
	case s["kty"] == "OKP" && s["crv"] == "Ed25519":
		alg = EdDSA
	case s["kty"] == "EC" && s["crv"] == "P-256":
		alg = ES256
	case s["kty"] == "RSA":
		return parseRSA(s)
	default:
		return nil, unusable{reason: "not an Ed25519, P-256 or RSA key", unsupported: true}
	}
	if a, ok := s["alg"]; ok && a != alg {
		// Binding one key to one algorithm: a key published for another
		// (or an unknown) algorithm is never used for this one.
		return nil, unusable{reason: "alg does not match the key type"}
	}
	kid := s["kid"]
	if kid == "" || len(kid) > 256 {
		return nil, unusable{reason: "missing or oversized kid"}
	}
	x, err := coordinate(s, "x")
	if err != nil {
		return nil, err
	}
	if alg == EdDSA {
		if _, ok := s["y"]; ok {
			return nil, unusable{reason: "y on an OKP key"}
		}
		return NewPublicKey(kid, ed25519.PublicKey(x))
	}
	y, err := coordinate(s, "y")
	if err != nil {
		return nil, err
	}
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, unusable{reason: "point not on P-256"}
	}
	return NewPublicKey(kid, pub)
}

// parseRSA reads the members of an RSA JWK.
func parseRSA(s map[string]string) (*PublicKey, error) {
	alg, ok := s["alg"]
	switch {
	case !ok:
		alg = RS256
	case alg != RS256 && alg != PS256:
		return nil, unusable{reason: "alg does not match the key type"}
	}
	if _, ok := s["crv"]; ok {
		return nil, unusable{reason: "crv on an RSA key"}
	}
	kid := s["kid"]
	if kid == "" || len(kid) > 256 {
		return nil, unusable{reason: "missing or oversized kid"}
	}
	n, err := unsignedInt(s, "n", MaxRSABits/8)
	if err != nil {
		return nil, err
	}
	e, err := unsignedInt(s, "e", 4)
	if err != nil {
		return nil, err
	}
	if !e.IsInt64() || e.Int64() > 1<<31-1 {
		return nil, unusable{reason: "RSA exponent out of range"}
	}
	k, err := NewRSAPublicKey(kid, &rsa.PublicKey{N: n, E: int(e.Int64())}, alg)
	if err != nil {
		return nil, unusable{reason: err.Error()}
	}
	return k, nil
}

// unsignedInt decodes a Base64urlUInt member (RFC 7518 section 2): unpadded
// base64url of at most maxLen big-endian octets, without leading zeros.
func unsignedInt(m map[string]string, name string, maxLen int) (*big.Int, error) {
	s, ok := m[name]
	if !ok {
		return nil, unusable{reason: "missing " + name}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > maxLen || b[0] == 0 || strings.ContainsAny(s, "\r\n") {
		return nil, unusable{reason: name + " is not a minimal unpadded base64url integer"}
	}
	return new(big.Int).SetBytes(b), nil
}

// coordinate decodes a 32-byte base64url member (Ed25519 x, P-256 x and y).
func coordinate(m map[string]string, name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, unusable{reason: "missing " + name}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 || strings.ContainsAny(s, "\r\n") {
		return nil, unusable{reason: name + " is not 32 bytes of unpadded base64url"}
	}
	return b, nil
}

// walkObject reads an object from dec, calling fn for each member name; fn
// must consume the value. Duplicate names and case variants of known names
// are refused.
func walkObject(dec *json.Decoder, known []string, fn func(name string) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		if seen[name] {
			return errors.New("duplicate member name")
		}
		seen[name] = true
		for _, k := range known {
			if name != k && strings.EqualFold(name, k) {
				return fmt.Errorf("case variant of member name %s", k)
			}
		}
		if err := fn(name); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %s", want)
	}
	return nil
}

func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	return dec.Decode(&raw)
}

// AppendJWK appends the public JWK of k, with "use":"sig" and its "alg".
func (k *PublicKey) AppendJWK(b []byte) []byte {
	switch k.alg {
	case EdDSA:
		b = fmt.Appendf(b, `{"kty":"OKP","crv":"Ed25519","x":"%s"`, b64(k.key.(ed25519.PublicKey)))
	case ES256:
		x, y := ecPoint(k.key.(*ecdsa.PublicKey))
		b = fmt.Appendf(b, `{"kty":"EC","crv":"P-256","x":"%s","y":"%s"`, b64(x), b64(y))
	case RS256, PS256:
		n, e := rsaParams(k.key.(*rsa.PublicKey))
		b = fmt.Appendf(b, `{"kty":"RSA","n":"%s","e":"%s"`, b64(n), b64(e))
	}
	kid, _ := json.Marshal(k.kid)
	return fmt.Appendf(b, `,"kid":%s,"use":"sig","alg":"%s"}`, kid, k.alg)
}

// MarshalJWKS returns the JWK Set document for keys.
func MarshalJWKS(keys []*PublicKey) []byte {
	b := []byte(`{"keys":[`)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = k.AppendJWK(b)
	}
	return append(b, "]}"...)
}
