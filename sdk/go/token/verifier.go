package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Segment limits, checked before decoding. A header of alg, kid and typ is
// about 150 characters; a signature of EdDSA or ES256 is exactly 86.
const (
	maxHeaderSegment = 1024
	sigSegment       = (SignatureSize*8 + 5) / 6 // 86: base64url of 64 bytes, unpadded
	maxKIDLength     = 256
	// An RS256 or PS256 signature is as long as the key's modulus:
	// keys.MinRSABits to keys.MaxRSABits.
	minRSASigSegment = (keys.MinRSABits + 5) / 6 // 342
	maxRSASigSegment = (keys.MaxRSABits + 5) / 6 // 683
)

// Verifier checks tokens against a fixed set of trusted issuers (Trust). It
// is immutable after NewVerifier and safe for concurrent use.
type Verifier struct {
	now      func() time.Time
	leeway   time.Duration
	maxSize  int
	b64      *base64.Encoding
	policies map[string]*policy
	cache    *ristretto.Cache[uint64, *verified]
}

// verified is a verified-token cache entry.
type verified struct {
	sum    [sha256.Size]byte // the whole hash, since the cache key is 64 bits of it
	typ    string
	exp    time.Time
	leeway time.Duration // of the token's issuer
	claims any
}

// NewVerifier returns a Verifier for the issuers given with Trust. Options:
// Trust (at least one), WithLeeway, WithClock, WithMaxTokenSize,
// WithVerifiedCache. Call Close when done if WithVerifiedCache is used.
func NewVerifier(opts ...Option) (*Verifier, error) {
	s, err := newSettings(roleVerifier, opts)
	if err != nil {
		return nil, err
	}
	if len(s.policies) == 0 {
		return nil, fmt.Errorf("%w: a verifier needs at least one Trust", ErrConfig)
	}
	v := &Verifier{
		now:      s.now,
		leeway:   s.leeway,
		maxSize:  s.maxSize,
		b64:      base64.RawURLEncoding.Strict(),
		policies: s.policies,
	}
	if s.cacheSize > 0 {
		v.cache, err = ristretto.NewCache(&ristretto.Config[uint64, *verified]{
			NumCounters: 10 * s.cacheSize,
			MaxCost:     s.cacheSize,
			BufferItems: 64,
			// Every entry costs 1, so MaxCost counts tokens. Without it
			// ristretto adds its own per-item overhead to each cost and
			// a cache sized for 16,384 tokens kept fewer than 300.
			IgnoreInternalCost: true,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: verified cache: %w", ErrConfig, err)
		}
	}
	return v, nil
}

// Close releases the verified-token cache. The Verifier must not be used
// afterwards.
func (v *Verifier) Close() {
	if v.cache != nil {
		v.cache.Close()
	}
}

// Verify checks raw as a token of kind k and returns its claims. On any
// error it returns the zero claims: nothing of a refused token is ever
// handed to the caller.
//
// The checks come in three stages. The first judges only the form of the
// token, by rules that are the same for every verifier (this package's,
// public), so that garbage costs no key lookup and no signature
// verification; the second authenticates it; only a token whose signature
// verified reaches the third, which judges its claims against the policy:
//
//  1. form: size limits (ErrTooLarge), three segments of the strict
//     base64url alphabet without padding or whitespace (ErrMalformed);
//     header: valid JSON object (ErrMalformed) with no duplicate
//     (ErrDuplicateName), no jku, x5u, jwk, x5c, crit, b64, cty, enc or
//     zip and, but in an access token, no parameter besides alg, kid and
//     typ (ErrHeader), alg EdDSA or ES256, or for an access token RS256 or
//     PS256 (ErrAlgorithm), kid present (ErrKeyID), typ the media type
//     k.Typ() but in an access token (ErrType); claims: one strict JSON
//     object, each name once and, but in an access token, in one spelling
//     (ErrDuplicateName), at most 64 members (ErrTooLarge); a signature of
//     64 bytes, or for RSA at least 2048 bits (ErrSignature);
//  2. signature: the key of kid in the source of the issuer named by iss,
//     of the algorithm alg, and the signature verifies with it. Every
//     failure here is ErrSignature, alike to the caller: iss missing or
//     not a trusted issuer, no key of that kid (the error also wraps
//     keys.ErrKeyNotFound, for the server's own logs), a key of another
//     algorithm, a signature that does not verify. An issuer whose keys
//     cannot be fetched is keys.ErrUnavailable (not a token defect);
//  3. claims, of a genuine token only: alg accepted from the issuer
//     (ErrAlgorithm); k accepted from it (ErrType); for an issuer with a
//     Profile, typ one of its Types (ErrType), and its lifetime and
//     leeway apply; for every other issuer, no header parameter but alg,
//     kid and typ (ErrHeader), no case variant of a claim name
//     (ErrDuplicateName), typ k.Typ() (ErrType); claim values of the
//     right type and within their limits (ErrClaims, ErrTooLarge); exp and
//     iat present (ErrClaims); now before exp + leeway (ErrExpired); nbf
//     and iat not after now + leeway (ErrNotYetValid); 0 < exp - iat <=
//     k.MaxLifetime() (ErrLifetime); aud contains the accepted audience
//     (ErrAudience); sub and the kind's required claims (ErrClaims), or
//     for a Profile its subject or client id, and its scopes
//     (ErrClaims); capabilities inside the issuer's namespace
//     (ErrCapability).
//
// So a forger learns from a refusal only what the package documents for
// everyone: never which issuers, audiences, kinds, algorithms or
// namespaces a verifier trusts, and never that a forgery "expired" (which
// rpcerr.AsArgument would tell a client to retry with a fresh token).
//
// With WithVerifiedCache, a token verified before as kind k is returned from
// the cache after checking its expiry again. The returned claims are the
// caller's own copy.
func Verify[C any](ctx context.Context, v *Verifier, k Kind[C], raw string) (C, error) {
	var zero C
	if err := admit(v, &k, raw); err != nil {
		return zero, err
	}
	if v.cache == nil {
		c, _, _, err := verify(ctx, v, &k, raw, false)
		if err != nil {
			return zero, err
		}
		return c, nil
	}
	sum := sha256.Sum256([]byte(raw))
	key := binary.LittleEndian.Uint64(sum[:8])
	if e, ok := v.cache.Get(key); ok && e.sum == sum {
		if e.typ != k.typ {
			return zero, fmt.Errorf("%w: typ is not %s", ErrType, k.typ)
		}
		c, ok := e.claims.(C)
		if !ok {
			return zero, fmt.Errorf("%w: typ is not %s", ErrType, k.typ)
		}
		if v.expired(e.exp, e.leeway) {
			return zero, fmt.Errorf("%w: exp passed", ErrExpired)
		}
		return k.clone(c), nil
	}
	c, exp, leeway, err := verify(ctx, v, &k, raw, false)
	if err != nil {
		return zero, err
	}
	if ttl := exp.Add(leeway).Sub(v.now()); ttl > 0 {
		// ristretto applies writes asynchronously; a verification does not
		// wait for it (a second one of the same token in the meantime
		// verifies the signature again, which is only slower).
		v.cache.SetWithTTL(key, &verified{sum: sum, typ: k.typ, exp: exp, leeway: leeway, claims: k.clone(c)}, 1, ttl)
	}
	return c, nil
}

// VerifyAllowExpired is Verify without the expiry check: every other check,
// the lifetime bound (exp - iat) included, still applies, and the verified
// cache is not used. It exists for compensation: a domain must still undo
// what a confirmation token did after the token expired, and must still know
// that the token is genuinely its own. Never use it to grant anything. On
// any error it returns the zero claims.
func VerifyAllowExpired[C any](ctx context.Context, v *Verifier, k Kind[C], raw string) (C, error) {
	var zero C
	if err := admit(v, &k, raw); err != nil {
		return zero, err
	}
	c, _, _, err := verify(ctx, v, &k, raw, true)
	if err != nil {
		return zero, err
	}
	return c, nil
}

// admit refuses, before any work, a zero Kind (ErrConfig) and a token
// longer than the verifier's limit (ErrTooLarge): the checks that Verify
// makes before its cache and VerifyAllowExpired before verify.
func admit[C any](v *Verifier, k *Kind[C], raw string) error {
	if k.reg == nil {
		return fmt.Errorf("%w: zero Kind", ErrConfig)
	}
	if len(raw) > v.maxSize {
		return fmt.Errorf("%w: token exceeds %d bytes", ErrTooLarge, v.maxSize)
	}
	return nil
}

// header is the parsed JWS protected header.
type header struct {
	alg algSet
	kid string
	typ string
	// other: a parameter besides alg, kid and typ that no rule refuses
	// (x5t, a private one). Only an access token may have one; only a
	// foreign issuer's profile accepts it (RFC 7515 4: parameters not
	// understood are ignored).
	other bool
}

// verify runs the checks of Verify and returns the claims, exp and the
// leeway of the token's issuer. Its claims are meaningful only when err is
// nil; the exported functions drop them otherwise.
func verify[C any](ctx context.Context, v *Verifier, k *Kind[C], raw string, allowExpired bool) (C, time.Time, time.Duration, error) {
	var c C
	var never time.Time
	fail := func(err error) (C, time.Time, time.Duration, error) { return c, never, 0, err }

	// 1. Form, by this package's rules alone.
	dot1, dot2, err := segments(raw)
	if err != nil {
		return fail(err)
	}
	if dot1 > maxHeaderSegment {
		return fail(fmt.Errorf("%w: header segment", ErrTooLarge))
	}
	sigLen := len(raw) - dot2 - 1
	if sigLen > maxRSASigSegment {
		return fail(fmt.Errorf("%w: signature segment", ErrTooLarge))
	}
	hb, err := v.b64.DecodeString(raw[:dot1])
	if err != nil {
		return fail(fmt.Errorf("%w: header is not base64url", ErrMalformed))
	}
	h, err := parseHeader(hb, k)
	if err != nil {
		return fail(err)
	}
	pb, err := v.b64.DecodeString(raw[dot1+1 : dot2])
	if err != nil {
		return fail(fmt.Errorf("%w: claims are not base64url", ErrMalformed))
	}
	var t times
	invalid, folded, err := decodeClaims(k, pb, &c, &t)
	if err != nil {
		return fail(err)
	}
	// The signature's length follows from alg: a modulus of 2048 to 4096
	// bits for RSA, 64 bytes otherwise.
	if h.alg&algRSA != 0 {
		if sigLen < minRSASigSegment {
			return fail(fmt.Errorf("%w: RSA signature shorter than %d bits", ErrSignature, keys.MinRSABits))
		}
	} else if sigLen != sigSegment {
		return fail(fmt.Errorf("%w: signature is not 64 bytes", ErrSignature))
	}
	sig, err := v.b64.DecodeString(raw[dot2+1:])
	if err != nil {
		return fail(fmt.Errorf("%w: signature is not base64url", ErrMalformed))
	}

	// 2. Signature. iss only chooses where to look for the key; an
	// issuer that is not trusted is a key that is not found.
	r := k.reg(&c)
	p := v.policies[r.Issuer]
	if p == nil {
		return fail(errNoIssuer)
	}
	key, err := p.source.Key(ctx, h.kid)
	if err != nil {
		if errors.Is(err, keys.ErrKeyNotFound) {
			return fail(fmt.Errorf("%w: no key of this kid at the issuer: %w", ErrSignature, err))
		}
		return fail(lookupError{err})
	}
	if algOf(key) != h.alg {
		return fail(fmt.Errorf("%w: alg is not the algorithm of the key", ErrSignature))
	}
	if err := key.Verify(raw[:dot2], sig); err != nil {
		return fail(ErrSignature)
	}

	// 3. Claims of a genuine token, against its issuer's policy.
	if p.algs&h.alg == 0 {
		return fail(fmt.Errorf("%w: alg not accepted from this issuer", ErrAlgorithm))
	}
	aud, ok := p.accept[k.typ]
	if !ok {
		return fail(fmt.Errorf("%w: issuer may not issue %s", ErrType, k.typ))
	}
	leeway, maxLifetime := v.leeway, k.maxLifetime
	if pr := p.profile; pr != nil {
		if !pr.acceptsType(h.typ) {
			return fail(fmt.Errorf("%w: typ not accepted from this issuer", ErrType))
		}
		leeway, maxLifetime = pr.leeway(v.leeway), pr.maxLifetime
	} else {
		// tokenrelay's own issuers: alg, kid and typ and nothing else,
		// each claim name in one spelling only (RFC 8725 3.11-3.12).
		switch {
		case h.other:
			return fail(fmt.Errorf("%w: only alg, kid and typ are accepted from this issuer", ErrHeader))
		case folded:
			return fail(fmt.Errorf("%w: case variant of a registered claim name", ErrDuplicateName))
		case !typIs(h.typ, k.typ):
			return fail(fmt.Errorf("%w: typ is not %s", ErrType, k.typ))
		}
	}
	if invalid != nil {
		return fail(invalid)
	}
	if err := v.checkTimes(&t, maxLifetime, leeway, r, allowExpired); err != nil {
		return fail(err)
	}
	if !contains(r.Audience, aud) {
		return fail(fmt.Errorf("%w: aud does not contain %s", ErrAudience, aud))
	}
	if p.profile != nil {
		// A foreign access token: its claims where its profile says.
		if err := p.profile.apply(pb, &c); err != nil {
			return fail(err)
		}
		return c, r.ExpiresAt, leeway, nil
	}
	if err := checkCommon(r); err != nil {
		return fail(err)
	}
	if err := k.check(&c); err != nil {
		return fail(err)
	}
	if k.caps != nil {
		for _, cp := range k.caps(&c) {
			rest, ok := strings.CutPrefix(cp, p.namespace)
			if !ok || len(rest) < 2 || rest[0] != ':' {
				return fail(fmt.Errorf("%w: namespace %s", ErrCapability, p.namespace))
			}
		}
	}
	return c, r.ExpiresAt, leeway, nil
}

// errNoIssuer refuses a token whose iss is missing or names no trusted
// issuer: there is no key to verify its signature with.
var errNoIssuer = fmt.Errorf("%w: iss names no trusted issuer", ErrSignature)

func algOf(k *keys.PublicKey) algSet { return algNamed(k.Algorithm()) }

// algNamed returns the algSet bit of an alg name, 0 for any other.
func algNamed(alg string) algSet {
	switch alg {
	case keys.EdDSA:
		return algEdDSA
	case keys.ES256:
		return algES256
	case keys.RS256:
		return algRS256
	case keys.PS256:
		return algPS256
	}
	return 0
}

// segments finds the two dots of a compact JWS and checks that every other
// byte is in the base64url alphabet. Go's base64 decoder skips '\r' and '\n'
// even in strict mode, so the alphabet is enforced here.
func segments(raw string) (dot1, dot2 int, err error) {
	dot1, dot2 = -1, -1
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			switch {
			case dot1 < 0:
				dot1 = i
			case dot2 < 0:
				dot2 = i
			default:
				return 0, 0, fmt.Errorf("%w: more than three segments", ErrMalformed)
			}
		default:
			return 0, 0, fmt.Errorf("%w: byte outside the base64url alphabet", ErrMalformed)
		}
	}
	if dot2 < 0 {
		return 0, 0, fmt.Errorf("%w: fewer than three segments", ErrMalformed)
	}
	return dot1, dot2, nil
}

// headerNames are the only header parameters a token of tokenrelay's own
// issuers may carry.
var headerNames = []string{"alg", "kid", "typ"}

// refusedHeaders are refused in every token, foreign ones included: a key
// source (jku, x5u) or a key (jwk, x5c) carried by the token itself, crit
// (this package understands no extension, so RFC 7515 4.1.11 requires
// refusing any token that lists one), b64 (RFC 7797: an unencoded payload),
// cty (a nested token) and JWE's enc and zip.
var refusedHeaders = []string{"jku", "x5u", "jwk", "x5c", "crit", "b64", "cty", "enc", "zip"}

// parseHeader reads the protected header of a token of kind k. For every
// kind it refuses duplicates and case variants of alg, kid and typ, the
// refusedHeaders, an alg outside the supported ones and a missing kid. A
// token of tokenrelay's own kinds may have nothing but alg, kid and typ,
// and its typ is the kind's. An access token may come from a foreign
// provider: its other parameters and its typ are judged once its issuer
// is known, after the signature.
func parseHeader[C any](b []byte, k *Kind[C]) (header, error) {
	var h header
	foreign := k.foreign
	d := decoder{b: b}
	if err := d.open('{'); err != nil {
		if errors.Is(err, errWrongType) {
			return h, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
		}
		return h, err
	}
	var alg, kid, gotTyp []byte
	var seen [3]bool
	var others names
	for first := true; ; {
		name, ok, err := d.member(&first)
		if err != nil {
			return h, headerErr(err)
		}
		if !ok {
			break
		}
		f := -1
		for i, n := range headerNames {
			if string(name) == n {
				f = i
			}
		}
		if f < 0 {
			if foldsTo(name, headerNames) {
				return h, fmt.Errorf("%w: case variant of a header parameter", ErrDuplicateName)
			}
			if !foreign || len(name) == 0 || foldsTo(name, refusedHeaders) {
				return h, fmt.Errorf("%w: only alg, kid and typ are accepted", ErrHeader)
			}
			if err := others.add(name); err != nil {
				return h, fmt.Errorf("%w: header parameter repeated", err)
			}
			h.other = true
			if err := d.skip(); err != nil {
				return h, err
			}
			continue
		}
		if seen[f] {
			return h, fmt.Errorf("%w: header parameter %s", ErrDuplicateName, headerNames[f])
		}
		seen[f] = true
		v, err := d.str()
		if err != nil {
			return h, headerErr(err)
		}
		switch f {
		case 0:
			alg = v
		case 1:
			kid = v
		case 2:
			gotTyp = v
		}
	}
	if err := d.end(); err != nil {
		return h, err
	}
	h.alg = algNamed(string(alg))
	if h.alg == 0 || (!foreign && h.alg&algRSA != 0) {
		return h, fmt.Errorf("%w: alg not supported", ErrAlgorithm)
	}
	if len(kid) == 0 || len(kid) > maxKIDLength {
		return h, fmt.Errorf("%w: kid missing or longer than %d bytes", ErrKeyID, maxKIDLength)
	}
	h.typ = string(gotTyp)
	if !foreign && !typIs(h.typ, k.typ) {
		return h, fmt.Errorf("%w: typ is not %s", ErrType, k.typ)
	}
	h.kid = string(kid)
	return h, nil
}

// typIs reports whether the typ header value got names the media type
// want: with or without the "application/" prefix, in any letter case
// (RFC 7515 4.1.9; media types are case-insensitive, RFC 2045 5.1).
func typIs(got, want string) bool {
	if len(got) > len(typPrefix) && strings.EqualFold(got[:len(typPrefix)], typPrefix) {
		got = got[len(typPrefix):]
	}
	return strings.EqualFold(got, want)
}

// headerErr reports a header value of the wrong JSON type as ErrHeader.
func headerErr(err error) error {
	if errors.Is(err, ErrClaims) {
		return fmt.Errorf("%w: header parameters must be strings in an object", ErrHeader)
	}
	return err
}

// times holds the NumericDate claims as seconds, with presence bits.
type times struct {
	exp, nbf, iat int64
	seen          uint64 // bit i: registeredNames[i] present
}

const (
	bitExp = 1 << 3
	bitNbf = 1 << 4
	bitIat = 1 << 5
)

// decodeClaims reads the claims set into c and t. err reports a defect of
// form: not one valid JSON object (ErrMalformed), a name twice or, but in
// an access token, in another letter case than a registered one
// (ErrDuplicateName), more than maxTopMembers members (ErrTooLarge).
// folded reports a case variant in an access token: names are
// case-sensitive (RFC 7519 4), so a foreign issuer's "EXP" is just an
// unknown claim, while tokenrelay's own issuers never write one and Verify
// refuses it from them. invalid reports the first claim whose value has the wrong
// type or exceeds its limits (ErrClaims, ErrTooLarge); decoding goes on past
// it, and Verify reports it only once the signature verified, like every
// other judgement of a claim's content. A claim in error keeps its zero
// value, so an iss of the wrong type names no issuer.
func decodeClaims[C any](k *Kind[C], data []byte, c *C, t *times) (invalid error, folded bool, err error) {
	d := decoder{b: data, s: string(data)}
	if err := d.open('{'); err != nil {
		if errors.Is(err, errWrongType) {
			return nil, false, fmt.Errorf("%w: claims set is not a JSON object", ErrMalformed)
		}
		return nil, false, err
	}
	r := k.reg(c)
	var unknown names
	for first, n := true, 0; ; n++ {
		name, ok, err := d.member(&first)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			break
		}
		if n == maxTopMembers {
			return nil, false, fmt.Errorf("%w: more than %d claims", ErrTooLarge, maxTopMembers)
		}
		f := -1
		for i, known := range k.all {
			if string(name) == known {
				f = i
				break
			}
		}
		if f < 0 {
			if foldsTo(name, k.all) {
				if !k.foreign {
					return nil, false, fmt.Errorf("%w: case variant of a registered claim name", ErrDuplicateName)
				}
				folded = true
			}
			if err := unknown.add(name); err != nil {
				return nil, false, fmt.Errorf("%w: claim name repeated", err)
			}
			if err := d.skip(); err != nil {
				return nil, false, err
			}
			continue
		}
		bit := uint64(1) << f
		if t.seen&bit != 0 {
			return nil, false, fmt.Errorf("%w: claim %s repeated", ErrDuplicateName, k.all[f])
		}
		t.seen |= bit
		start, depth := d.i, d.depth
		if f < len(registeredNames) {
			err = decodeRegistered(r, f, &d, t)
		} else {
			err = k.decode(c, f-len(registeredNames), &d)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrDuplicateName) {
			return nil, false, fmt.Errorf("claim %s: %w", k.all[f], err)
		}
		if invalid == nil {
			invalid = fmt.Errorf("claim %s: %w", k.all[f], err)
		}
		d.i, d.depth = start, depth
		if err := d.skip(); err != nil {
			return nil, false, err
		}
		if f < len(registeredNames) {
			clearRegistered(r, f)
		}
	}
	return invalid, folded, d.end()
}

// clearRegistered resets registered claim f after a value in error.
func clearRegistered(r *Registered, f int) {
	switch f {
	case 0:
		r.Issuer = ""
	case 1:
		r.Subject = ""
	case 2:
		r.Audience = nil
	case 6:
		r.ID = ""
	}
}

func decodeRegistered(r *Registered, f int, d *decoder, t *times) (err error) {
	switch f {
	case 0:
		r.Issuer, err = d.string()
	case 1:
		r.Subject, err = d.string()
	case 2:
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == '"' {
			var s string
			s, err = d.string()
			r.Audience = []string{s}
		} else {
			r.Audience, err = d.strings(maxAudiences)
		}
	// A NumericDate may have a fraction (RFC 7519 2): exp is rounded
	// down, nbf and iat up, so that rounding never lengthens a token's
	// life.
	case 3:
		t.exp, err = d.numericDate(false)
		r.ExpiresAt = time.Unix(t.exp, 0)
	case 4:
		t.nbf, err = d.numericDate(true)
		r.NotBefore = time.Unix(t.nbf, 0)
	case 5:
		t.iat, err = d.numericDate(true)
		r.IssuedAt = time.Unix(t.iat, 0)
	case 6:
		r.ID, err = d.string()
	}
	return err
}

func (v *Verifier) checkTimes(t *times, maxLifetime, leeway time.Duration, r *Registered, allowExpired bool) error {
	if t.seen&bitExp == 0 {
		return fmt.Errorf("%w: claim exp required", ErrClaims)
	}
	if t.seen&bitIat == 0 {
		return fmt.Errorf("%w: claim iat required", ErrClaims)
	}
	now := v.now()
	if !allowExpired && v.expired(r.ExpiresAt, leeway) {
		return fmt.Errorf("%w: exp passed", ErrExpired)
	}
	// Valid on or after nbf (RFC 7519 4.1.5): refused only when nbf -
	// leeway is still ahead.
	late := now.Add(leeway)
	if t.seen&bitNbf != 0 && r.NotBefore.After(late) {
		return fmt.Errorf("%w: nbf in the future", ErrNotYetValid)
	}
	if r.IssuedAt.After(late) {
		return fmt.Errorf("%w: iat in the future", ErrNotYetValid)
	}
	if life := t.exp - t.iat; life <= 0 || life > int64(maxLifetime/time.Second) {
		return fmt.Errorf("%w: exp - iat must be in (0, %v]", ErrLifetime, maxLifetime)
	}
	return nil
}

// expired reports whether a token that expires at exp is expired now: on
// or after exp plus the leeway (RFC 7519 4.1.4: "on or after").
func (v *Verifier) expired(exp time.Time, leeway time.Duration) bool {
	return !v.now().Before(exp.Add(leeway))
}

// checkCommon checks the registered claims every kind requires besides the
// times.
func checkCommon(r *Registered) error {
	if r.Subject == "" {
		return fmt.Errorf("%w: claim sub required", ErrClaims)
	}
	if len(r.Audience) == 0 {
		return fmt.Errorf("%w: claim aud required", ErrClaims)
	}
	for _, a := range r.Audience {
		if a == "" {
			return fmt.Errorf("%w: empty aud value", ErrClaims)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
