package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithm names as they appear in the JWS "alg" header and the JWK "alg"
// member.
const (
	// EdDSA is Ed25519 (RFC 8037), the default for every ring.
	EdDSA = "EdDSA"
	// ES256 is ECDSA over P-256 with SHA-256 and a 64-byte r||s signature
	// (RFC 7518 section 3.4), supported for interoperability.
	ES256 = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3), the
	// one algorithm RFC 9068 section 2.1 requires of every resource
	// server. Only verified, for the access tokens of foreign OpenID
	// Connect providers; never produced.
	RS256 = "RS256"
	// PS256 is RSASSA-PSS with SHA-256 and MGF1 (RFC 7518 section 3.5).
	// Only verified, like RS256.
	PS256 = "PS256"
)

// Bounds of the RSA modulus of a verification key, in bits. Below 2048 an
// RSA key is too weak to trust (NIST SP 800-131A; RFC 7518 section 3.3);
// above 4096 only the cost of a verification grows, which a hostile JWKS
// could choose.
const (
	MinRSABits = 2048
	MaxRSABits = 4096
)

// Sentinel errors. Each error returned by this package wraps one of them, so
// callers test with errors.Is.
var (
	// ErrKeyNotFound reports that a source has no key with the requested kid.
	// For a verifier this is a defect of the token (Connect code
	// Unauthenticated), not an outage.
	ErrKeyNotFound = errors.New("keys: key not found")
	// ErrUnavailable reports that a source cannot currently say which keys
	// are valid, for example because an issuer's JWKS has been unreachable for
	// longer than the allowed staleness. Connect code Unavailable.
	ErrUnavailable = errors.New("keys: keys unavailable")
	// ErrUnsupportedAlgorithm reports an algorithm other than EdDSA and
	// ES256 (and, for verification keys only, RS256 and PS256).
	ErrUnsupportedAlgorithm = errors.New("keys: unsupported algorithm")
	// ErrMalformedKey reports a key or key set that does not parse strictly.
	ErrMalformedKey = errors.New("keys: malformed key")
	// ErrInsecurePermissions reports a key directory or key file that group
	// or others may access.
	ErrInsecurePermissions = errors.New("keys: key storage permissions too open")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("keys: signature invalid")
)

// Source finds the public key with a given kid among the keys of one issuer.
// A verifier looks a key up only in the source of the token's own issuer, so
// a kid never selects another issuer's key.
type Source interface {
	// Key returns the key with the given kid. It returns an error wrapping
	// ErrKeyNotFound when the issuer has no such key and ErrUnavailable when
	// the issuer's keys cannot be known right now.
	Key(ctx context.Context, kid string) (*PublicKey, error)
}

// Signer provides the key an issuer signs with now.
type Signer interface {
	// SigningKey returns the current signing key.
	SigningKey() (*PrivateKey, error)
}

// PublicKey is a verification key bound to one algorithm and one kid. It is
// immutable and safe for concurrent use.
type PublicKey struct {
	kid string
	alg string
	key crypto.PublicKey
	// method and boxed are resolved once, so that Verify does no type switch
	// and no interface conversion (which would allocate for ed25519 keys).
	method jwt.SigningMethod
	boxed  any
}

// NewPublicKey binds key (an ed25519.PublicKey or a P-256 *ecdsa.PublicKey)
// to its algorithm. An empty kid is replaced by the RFC 7638 thumbprint.
func NewPublicKey(kid string, key crypto.PublicKey) (*PublicKey, error) {
	pk := &PublicKey{kid: kid, key: key, boxed: key}
	switch k := key.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 public key length", ErrMalformedKey)
		}
		pk.alg, pk.method = EdDSA, jwt.SigningMethodEdDSA
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: only P-256 ECDSA keys", ErrUnsupportedAlgorithm)
		}
		pk.alg, pk.method = ES256, jwt.SigningMethodES256
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupportedAlgorithm, key)
	}
	if pk.kid == "" {
		pk.kid = pk.Thumbprint()
	}
	return pk, nil
}

// strictPS256 verifies PS256 as RFC 7518 section 3.5 defines it: the salt
// as long as the hash, 32 bytes. golang-jwt's SigningMethodPS256 accepts
// any salt length on verification (for tokens of old libraries), which
// Wycheproof's JWS vectors call invalid.
var strictPS256 = &jwt.SigningMethodRSAPSS{
	SigningMethodRSA: jwt.SigningMethodPS256.SigningMethodRSA,
	Options:          &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash},
}

// NewRSAPublicKey binds an RSA key to alg, RS256 or PS256: an RSA key
// verifies one of them, never both, as a JWK's "alg" binds it. The modulus
// must have MinRSABits to MaxRSABits bits, must not be one of the weak
// moduli of CVE-2017-15361 (ROCA, Infineon's key generation, whose private
// key can be computed from it), and the exponent must be odd and at least
// 3. Signatures are verified by crypto/rsa (through golang-jwt). An
// empty kid is replaced by the RFC 7638 thumbprint. There is no RSA
// private key in this package: tokenrelay never signs with RSA.
func NewRSAPublicKey(kid string, key *rsa.PublicKey, alg string) (*PublicKey, error) {
	if key == nil || key.N == nil {
		return nil, fmt.Errorf("%w: nil RSA key", ErrMalformedKey)
	}
	if bits := key.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
		return nil, fmt.Errorf("%w: RSA modulus of %d bits, want %d to %d", ErrMalformedKey, bits, MinRSABits, MaxRSABits)
	}
	if key.E < 3 || key.E%2 == 0 {
		return nil, fmt.Errorf("%w: RSA exponent", ErrMalformedKey)
	}
	pk := &PublicKey{kid: kid, alg: alg, key: key, boxed: key}
	switch alg {
	case RS256:
		pk.method = jwt.SigningMethodRS256
	case PS256:
		pk.method = strictPS256
	default:
		return nil, fmt.Errorf("%w: RSA key for %q", ErrUnsupportedAlgorithm, alg)
	}
	if roca(key.N) {
		return nil, fmt.Errorf("%w: RSA modulus with the ROCA fingerprint (CVE-2017-15361): its private key can be computed", ErrMalformedKey)
	}
	if pk.kid == "" {
		pk.kid = pk.Thumbprint()
	}
	return pk, nil
}

// KID returns the key id.
func (k *PublicKey) KID() string { return k.kid }

// Algorithm returns EdDSA, ES256, RS256 or PS256: the only algorithm this
// key verifies.
func (k *PublicKey) Algorithm() string { return k.alg }

// Key returns the ed25519.PublicKey, *ecdsa.PublicKey or *rsa.PublicKey.
func (k *PublicKey) Key() crypto.PublicKey { return k.key }

// Verify checks sig over signingInput (the JWS "header.payload" string) with
// golang-jwt's implementation of the key's algorithm. An ES256 signature must
// be the raw 64-byte r||s form; a DER signature is refused. An RS256 or
// PS256 signature is verified by crypto/rsa and must be as long as the
// modulus. The error wraps ErrBadSignature.
func (k *PublicKey) Verify(signingInput string, sig []byte) error {
	verifies.Add(1)
	if err := k.method.Verify(signingInput, sig, k.boxed); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding): the members required for the key type, in lexicographic order.
func (k *PublicKey) Thumbprint() string {
	var canonical []byte
	switch k.alg {
	case EdDSA:
		canonical = fmt.Appendf(nil, `{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64(k.key.(ed25519.PublicKey)))
	case ES256:
		x, y := ecPoint(k.key.(*ecdsa.PublicKey))
		canonical = fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(x), b64(y))
	case RS256, PS256:
		n, e := rsaParams(k.key.(*rsa.PublicKey))
		canonical = fmt.Appendf(nil, `{"e":"%s","kty":"RSA","n":"%s"}`, b64(e), b64(n))
	}
	sum := sha256.Sum256(canonical)
	return b64(sum[:])
}

// ecPoint returns the 32-byte big-endian affine coordinates of a P-256 key.
func ecPoint(k *ecdsa.PublicKey) (x, y []byte) {
	// Bytes cannot fail for a valid P-256 key, and NewPublicKey admits
	// nothing else.
	raw, _ := k.Bytes()
	return raw[1:33], raw[33:65]
}

// rsaParams returns the big-endian modulus and exponent of an RSA key,
// without leading zero octets (RFC 7518 section 6.3.1).
func rsaParams(k *rsa.PublicKey) (n, e []byte) {
	e = big.NewInt(int64(k.E)).Bytes()
	return k.N.Bytes(), e
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// PrivateKey is a signing key bound to one algorithm and one kid.
type PrivateKey struct {
	signer crypto.Signer
	pub    *PublicKey
}

// GenerateKey returns a new key for alg (EdDSA or ES256) drawn from
// crypto/rand, with its thumbprint as kid.
func GenerateKey(alg string) (*PrivateKey, error) {
	switch alg {
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keys: generate: %w", err)
		}
		return NewPrivateKey(priv)
	case ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keys: generate: %w", err)
		}
		return NewPrivateKey(priv)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
	}
}

// NewPrivateKey wraps an ed25519.PrivateKey or a P-256 *ecdsa.PrivateKey;
// its kid is the thumbprint of the public key.
func NewPrivateKey(signer crypto.Signer) (*PrivateKey, error) {
	switch s := signer.(type) {
	case ed25519.PrivateKey:
		if len(s) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: ed25519 private key length", ErrMalformedKey)
		}
	case *ecdsa.PrivateKey:
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupportedAlgorithm, signer)
	}
	pub, err := NewPublicKey("", signer.Public())
	if err != nil {
		return nil, err
	}
	return &PrivateKey{signer: signer, pub: pub}, nil
}

// KID returns the key id (the thumbprint of the public key).
func (k *PrivateKey) KID() string { return k.pub.kid }

// Algorithm returns EdDSA or ES256.
func (k *PrivateKey) Algorithm() string { return k.pub.alg }

// Public returns the matching public key.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// SigningKey returns k itself, so that a single key can serve as a [Signer]
// (for example in tests, or for a workload key that is never rotated in
// process).
func (k *PrivateKey) SigningKey() (*PrivateKey, error) { return k, nil }

// Sign signs signingInput (the JWS "header.payload" string) with golang-jwt's
// implementation of the key's algorithm; ES256 signatures are raw r||s.
func (k *PrivateKey) Sign(signingInput string) ([]byte, error) {
	signs.Add(1)
	sig, err := k.pub.method.Sign(signingInput, k.signer)
	if err != nil {
		return nil, fmt.Errorf("keys: sign: %w", err)
	}
	return sig, nil
}
