package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
var jwkMembers = []string{"kty", "crv", "x", "y", "d", "kid", "use", "alg", "key_ops"}

// ParseJWKS parses a JWK Set (RFC 7517 section 5) strictly and returns its
// usable verification keys.
//
// The whole set is refused (ErrMalformedKey) if it is not valid UTF-8 JSON,
// repeats a member name or spells a known one in another case, has more than
// MaxJWKSKeys keys, repeats a kid, contains private key material ("d"), or
// contains an Ed25519 or P-256 key that is malformed: no kid, coordinates of
// the wrong length or not on the curve, or an "alg" that does not match the
// key type. Keys this package cannot use at all (RSA, symmetric "oct", other
// curves, "use" other than "sig", "key_ops" without "verify") are skipped, so
// that a provider's mixed set still yields its EdDSA and ES256 keys.
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
			k, err := parseJWK(dec)
			if err != nil {
				return fmt.Errorf("key %d: %w", n, err)
			}
			if k == nil {
				continue
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

// ParseJWK parses one JWK with the rules of ParseJWKS. A key this package
// cannot use is an error here (ErrUnsupportedAlgorithm), not skipped.
func ParseJWK(data []byte) (*PublicKey, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrMalformedKey)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	k, err := parseJWK(dec)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the key")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: jwk: %w", ErrMalformedKey, err)
	}
	if k == nil {
		return nil, fmt.Errorf("%w: jwk is not an Ed25519 or P-256 signing key", ErrUnsupportedAlgorithm)
	}
	return k, nil
}

// parseJWK reads one JWK object; it returns nil, nil for a key to skip.
func parseJWK(dec *json.Decoder) (*PublicKey, error) {
	m := make(map[string]string, 8)
	var ops []string
	hasOps := false
	err := walkObject(dec, jwkMembers, func(name string) error {
		switch name {
		case "key_ops":
			hasOps = true
			return dec.Decode(&ops)
		case "kty", "crv", "x", "y", "d", "kid", "use", "alg":
			var s string
			if err := dec.Decode(&s); err != nil {
				return fmt.Errorf("member %s: %w", name, err)
			}
			m[name] = s
			return nil
		default:
			return skipValue(dec)
		}
	})
	if err != nil {
		return nil, err
	}
	if _, ok := m["d"]; ok {
		return nil, errors.New("private key material in a public key set")
	}
	if use, ok := m["use"]; ok && use != "sig" {
		return nil, nil
	}
	if hasOps && !contains(ops, "verify") {
		return nil, nil
	}
	var alg string
	switch {
	case m["kty"] == "OKP" && m["crv"] == "Ed25519":
		alg = EdDSA
	case m["kty"] == "EC" && m["crv"] == "P-256":
		alg = ES256
	default:
		return nil, nil
	}
	if a, ok := m["alg"]; ok && a != alg {
		return nil, fmt.Errorf("alg does not match the key type")
	}
	kid := m["kid"]
	if kid == "" || len(kid) > 256 {
		return nil, errors.New("missing or oversized kid")
	}
	x, err := coordinate(m, "x")
	if err != nil {
		return nil, err
	}
	if alg == EdDSA {
		if _, ok := m["y"]; ok {
			return nil, errors.New("y on an OKP key")
		}
		return NewPublicKey(kid, ed25519.PublicKey(x))
	}
	y, err := coordinate(m, "y")
	if err != nil {
		return nil, err
	}
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, errors.New("point not on P-256")
	}
	return NewPublicKey(kid, pub)
}

// coordinate decodes a 32-byte base64url member (Ed25519 x, P-256 x and y).
func coordinate(m map[string]string, name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("missing %s", name)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 32 || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%s is not 32 bytes of unpadded base64url", name)
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// AppendJWK appends the public JWK of k, with "use":"sig" and its "alg".
func (k *PublicKey) AppendJWK(b []byte) []byte {
	switch k.alg {
	case EdDSA:
		b = fmt.Appendf(b, `{"kty":"OKP","crv":"Ed25519","x":"%s"`, b64(k.key.(ed25519.PublicKey)))
	case ES256:
		x, y := ecPoint(k.key.(*ecdsa.PublicKey))
		b = fmt.Appendf(b, `{"kty":"EC","crv":"P-256","x":"%s","y":"%s"`, b64(x), b64(y))
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
