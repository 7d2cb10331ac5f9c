// Package sealed seals a confirmation token's constraints for their issuer
// alone: the domain's references and hashes travel inside the signed token
// as a compact JWE (RFC 7516) that only the issuer can open, so that the
// client, OrderProcessing and anything that logs or stores the token learn
// nothing from them. OrderProcessing still verifies the envelope and the
// settlement, which stay in the clear; the issuer opens the constraints when
// the token comes back to be exercised or compensated.
//
// # Format
//
// A sealed constraints claim is a JSON object with one member, [Member]
// ("jwe"), whose value is a compact JWE:
//
//	{"jwe": "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoidjMifQ..<iv>.<ciphertext>.<tag>"}
//
// Its protected header has exactly alg, enc and kid: alg "dir" (the
// default, the key is the content key) or "A256KW" (a fresh content key per
// token, wrapped by the key), enc "A256GCM", and kid "v<N>", the version of
// the issuer's vault ring the key comes from. The plaintext is the
// constraints as a JSON object of strings. The key of version N is derived
// from the vault key of version N for this issuer alone
// (vault.Keyring.DeriveKey with purpose [Purpose](issuer)): the vault key
// itself never encrypts a JWE, and a ring shared by several services (the
// embedded process) gives each issuer its own key.
//
// # Opening
//
// [Sealer.Open] is strict, before any cryptography: a bounded size, the
// five compact segments, a protected header of exactly those three members
// (so "zip", "crit", "jku", "jwk", "x5u", "cty", "typ" and anything else are
// refused), alg "dir" or "A256KW" only, enc "A256GCM" only, a canonical
// kid naming a version the ring holds; then go-jose
// (github.com/go-jose/go-jose/v4) parses and decrypts with the same
// allow-lists. Every refusal wraps [ErrSealed]; a kid naming a version the
// ring does not hold also wraps vault.ErrUnknownKeyVersion.
//
// # Rotation
//
// As the vault's: [Sealer.Seal] uses the ring's current version, Open any
// version the ring still holds. A vault key directory never drops a version
// (tokenrelay vault rotate adds one), so every token sealed before a
// rotation stays open for its issuer.
//
// # Inspection
//
// [Describe] reads the protected header of sealed constraints without a key,
// for an operator's tools (tokenrelay token inspect): it says that they are
// sealed, how and under which key version, never what they hold.
//
// Its rule: it is pure, like package capability: no transport, no
// generated code, no driver; the JOSE library and the vault only.
package sealed

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Member is the one member of a sealed constraints claim.
const Member = "jwe"

// MaxSize bounds a sealed value, before any decoding: constraints are a few
// references and hashes, far below it.
const MaxSize = 4096

// The algorithms a sealer may use.
const (
	// Dir is direct encryption: the derived key is the content key (the
	// default).
	Dir = string(jose.DIRECT)
	// A256KW wraps a fresh content key per token with the derived key
	// (AES Key Wrap, RFC 3394).
	A256KW = string(jose.A256KW)
	// Enc is the only content encryption: AES-256-GCM.
	Enc = string(jose.A256GCM)
)

var (
	keyAlgorithms      = []jose.KeyAlgorithm{jose.DIRECT, jose.A256KW}
	contentEncryptions = []jose.ContentEncryption{jose.A256GCM}
)

// ErrSealed reports sealed constraints that cannot be opened: malformed,
// of a header, algorithm or key version not allowed, or that do not
// authenticate. The message never contains the value.
var ErrSealed = errors.New("sealed constraints cannot be opened")

// ErrConfig reports a Sealer that cannot be built.
var ErrConfig = errors.New("sealed: invalid configuration")

// Purpose is the key-derivation purpose of issuer's sealing keys (see
// vault.Keyring.DeriveKey).
func Purpose(issuer string) string { return "tokenrelay/constraints/jwe/v1\x00" + issuer }

// IsSealed reports whether constraints are sealed: exactly one member,
// [Member].
func IsSealed(constraints map[string]string) bool {
	_, ok := constraints[Member]
	return ok && len(constraints) == 1
}

// Sealer seals and opens one issuer's constraints with keys derived from
// its vault ring. It is safe for concurrent use.
type Sealer struct {
	ring    *vault.Keyring
	purpose string
	alg     jose.KeyAlgorithm
}

// New returns the sealer of issuer over ring, sealing with alg ([Dir] when
// empty, or [A256KW]).
func New(ring *vault.Keyring, issuer, alg string) (*Sealer, error) {
	if ring == nil || issuer == "" {
		return nil, fmt.Errorf("%w: a vault ring and an issuer are required", ErrConfig)
	}
	switch alg {
	case "", Dir:
		alg = Dir
	case A256KW:
	default:
		return nil, fmt.Errorf("%w: algorithm %q (want %s or %s)", ErrConfig, alg, Dir, A256KW)
	}
	return &Sealer{ring: ring, purpose: Purpose(issuer), alg: jose.KeyAlgorithm(alg)}, nil
}

// Seal returns constraints sealed under the ring's current version:
// {"jwe": compact JWE}. Constraints already sealed are refused.
func (s *Sealer) Seal(constraints map[string]string) (map[string]string, error) {
	if IsSealed(constraints) {
		return nil, fmt.Errorf("%w: constraints are already sealed", ErrConfig)
	}
	plaintext, err := json.Marshal(constraints) // keys sorted: deterministic
	if err != nil {
		return nil, err
	}
	if constraints == nil {
		plaintext = []byte("{}")
	}
	ver, key, err := s.ring.DeriveCurrent(s.purpose)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: s.alg, Key: key, KeyID: kid(ver)}, nil)
	if err != nil {
		return nil, err
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return nil, err
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		return nil, err
	}
	if len(compact) > MaxSize {
		return nil, fmt.Errorf("%w: sealed constraints are %d bytes, limit %d", ErrConfig, len(compact), MaxSize)
	}
	return map[string]string{Member: compact}, nil
}

// Open returns the constraints that c seals. Constraints that are not
// sealed are refused with [ErrSealed] (use [IsSealed] first).
func (s *Sealer) Open(c map[string]string) (map[string]string, error) {
	if !IsSealed(c) {
		return nil, fmt.Errorf("%w: not sealed", ErrSealed)
	}
	h, err := Describe(c)
	if err != nil {
		return nil, err
	}
	key, err := s.ring.DeriveKey(h.Version, s.purpose)
	if err != nil {
		if errors.Is(err, vault.ErrUnknownKeyVersion) {
			return nil, fmt.Errorf("%w: key version %d: %w", ErrSealed, h.Version, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	defer clear(key)
	obj, err := jose.ParseEncryptedCompact(c[Member], keyAlgorithms, contentEncryptions)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrSealed)
	}
	if obj.Header.KeyID != h.KID || string(obj.Header.Algorithm) != h.Alg {
		return nil, fmt.Errorf("%w: header", ErrSealed)
	}
	plaintext, err := obj.Decrypt(key)
	if err != nil {
		return nil, fmt.Errorf("%w: does not authenticate", ErrSealed)
	}
	var out map[string]string
	d := json.NewDecoder(bytes.NewReader(plaintext))
	if err := d.Decode(&out); err != nil || d.More() || out == nil {
		return nil, fmt.Errorf("%w: plaintext is not an object of strings", ErrSealed)
	}
	return out, nil
}

// Header is what [Describe] reads of sealed constraints without a key.
type Header struct {
	Alg, Enc, KID string
	// Version is the vault key version KID names.
	Version uint32
	// Size is the length of the compact JWE, in bytes.
	Size int
}

// Describe checks the form of sealed constraints c and returns their
// protected header, without opening them (no key is needed). Everything
// [Sealer.Open] refuses before cryptography, it refuses too, wrapping
// [ErrSealed].
func Describe(c map[string]string) (Header, error) {
	if !IsSealed(c) {
		return Header{}, fmt.Errorf("%w: not sealed", ErrSealed)
	}
	compact := c[Member]
	if len(compact) > MaxSize {
		return Header{}, fmt.Errorf("%w: %d bytes, limit %d", ErrSealed, len(compact), MaxSize)
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 5 {
		return Header{}, fmt.Errorf("%w: not a compact JWE", ErrSealed)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return Header{}, fmt.Errorf("%w: protected header is not base64url", ErrSealed)
	}
	members, err := headerMembers(raw)
	if err != nil {
		return Header{}, err
	}
	h := Header{Size: len(compact)}
	for name, v := range members {
		switch name {
		case "alg":
			h.Alg = v
		case "enc":
			h.Enc = v
		case "kid":
			h.KID = v
		default: // zip, crit, jku, jwk, cty, typ, ...
			return Header{}, fmt.Errorf("%w: header parameter %q is not allowed", ErrSealed, clip(name))
		}
	}
	if len(members) != 3 || h.Alg == "" || h.Enc == "" || h.KID == "" {
		return Header{}, fmt.Errorf("%w: the protected header must have alg, enc and kid, once each", ErrSealed)
	}
	if h.Alg != Dir && h.Alg != A256KW {
		return Header{}, fmt.Errorf("%w: alg %q is not allowed", ErrSealed, clip(h.Alg))
	}
	if h.Enc != Enc {
		return Header{}, fmt.Errorf("%w: enc %q is not allowed", ErrSealed, clip(h.Enc))
	}
	if h.Version, err = parseKID(h.KID); err != nil {
		return Header{}, err
	}
	if (h.Alg == Dir) != (parts[1] == "") {
		return Header{}, fmt.Errorf("%w: encrypted key does not fit alg %s", ErrSealed, h.Alg)
	}
	return h, nil
}

// headerMembers reads a protected header: one JSON object of string
// members, each name once, nothing after it.
func headerMembers(raw []byte) (map[string]string, error) {
	bad := fmt.Errorf("%w: the protected header is not a JSON object of strings, each name once", ErrSealed)
	d := json.NewDecoder(bytes.NewReader(raw))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, bad
	}
	members := map[string]string{}
	for d.More() {
		t, err := d.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return nil, bad
		}
		t, err = d.Token()
		v, ok := t.(string)
		if err != nil || !ok {
			return nil, bad
		}
		if _, dup := members[name]; dup {
			return nil, bad
		}
		members[name] = v
	}
	if t, err := d.Token(); err != nil || t != json.Delim('}') {
		return nil, bad
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, bad
	}
	return members, nil
}

func kid(ver uint32) string { return "v" + strconv.FormatUint(uint64(ver), 10) }

// parseKID reads "v<N>": N decimal, 1 and up, no leading zero, within
// uint32.
func parseKID(s string) (uint32, error) {
	digits, ok := strings.CutPrefix(s, "v")
	if !ok || digits == "" || digits[0] == '0' || len(digits) > 10 {
		return 0, fmt.Errorf("%w: kid %q is not a key version", ErrSealed, clip(s))
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%w: kid %q is not a key version", ErrSealed, clip(s))
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: kid %q is not a key version", ErrSealed, clip(s))
	}
	return uint32(n), nil
}

// clip bounds attacker-chosen text quoted in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
