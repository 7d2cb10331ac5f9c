package token

import (
	"bytes"
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

// Verify checks raw as a token of kind k and returns its claims. The checks,
// cheapest first so that garbage costs no signature verification:
//
//  1. size limits (ErrTooLarge), three segments of the strict base64url
//     alphabet without padding or whitespace (ErrMalformed);
//  2. header: valid JSON object (ErrMalformed) with no duplicate
//     (ErrDuplicateName) and no parameter but alg, kid, typ (ErrHeader); alg
//     EdDSA or ES256 (ErrAlgorithm); kid present (ErrKeyID); typ equal to
//     k.Typ() or "application/"+k.Typ() (ErrType);
//  3. claims: strict JSON object, one exact spelling per name
//     (ErrDuplicateName), typed values (ErrClaims);
//  4. policy of iss (ErrIssuer): k accepted from it (ErrType), alg accepted
//     from it (ErrAlgorithm);
//  5. exp and iat present (ErrClaims); exp + leeway not past (ErrExpired);
//     nbf and iat not beyond now + leeway (ErrNotYetValid); 0 < exp - iat <=
//     k.MaxLifetime() (ErrLifetime); aud contains the accepted audience
//     (ErrAudience); sub and the kind's required claims (ErrClaims);
//     capabilities inside the issuer's namespace (ErrCapability);
//  6. key by kid from the issuer's own source only (keys.ErrKeyNotFound,
//     keys.ErrUnavailable) whose algorithm is alg (ErrAlgorithm); signature
//     of 64 bytes that verifies (ErrSignature).
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
		c, _, err := verify(ctx, v, &k, raw, false)
		return c, err
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
		if v.now().After(e.exp.Add(v.leeway)) {
			return zero, fmt.Errorf("%w: exp passed", ErrExpired)
		}
		return k.clone(c), nil
	}
	c, exp, err := verify(ctx, v, &k, raw, false)
	if err != nil {
		return zero, err
	}
	if ttl := exp.Add(v.leeway).Sub(v.now()); ttl > 0 {
		v.cache.SetWithTTL(key, &verified{sum: sum, typ: k.typ, exp: exp, claims: k.clone(c)}, 1, ttl)
		// Wait so that the next hop in this process finds the entry;
		// ristretto applies writes asynchronously.
		v.cache.Wait()
	}
	return c, nil
}

// VerifyAllowExpired is Verify without the expiry check: every other check,
// the lifetime bound (exp - iat) included, still applies, and the verified
// cache is not used. It exists for compensation: a domain must still undo
// what a confirmation token did after the token expired, and must still know
// that the token is genuinely its own. Never use it to grant anything.
func VerifyAllowExpired[C any](ctx context.Context, v *Verifier, k Kind[C], raw string) (C, error) {
	var zero C
	if err := admit(v, &k, raw); err != nil {
		return zero, err
	}
	c, _, err := verify(ctx, v, &k, raw, true)
	return c, err
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
}

func verify[C any](ctx context.Context, v *Verifier, k *Kind[C], raw string, allowExpired bool) (C, time.Time, error) {
	var c C
	var never time.Time
	dot1, dot2, err := segments(raw)
	if err != nil {
		return c, never, err
	}
	if dot1 > maxHeaderSegment {
		return c, never, fmt.Errorf("%w: header segment", ErrTooLarge)
	}
	if len(raw)-dot2-1 > 2*sigSegment {
		return c, never, fmt.Errorf("%w: signature segment", ErrTooLarge)
	}
	hb, err := v.b64.DecodeString(raw[:dot1])
	if err != nil {
		return c, never, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	h, err := parseHeader(hb, k.typ)
	if err != nil {
		return c, never, err
	}
	pb, err := v.b64.DecodeString(raw[dot1+1 : dot2])
	if err != nil {
		return c, never, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	var t times
	if err := decodeClaims(k, pb, &c, &t); err != nil {
		return c, never, err
	}
	r := k.reg(&c)
	if r.Issuer == "" {
		return c, never, fmt.Errorf("%w: iss missing", ErrIssuer)
	}
	p := v.policies[r.Issuer]
	if p == nil {
		return c, never, fmt.Errorf("%w: iss unknown", ErrIssuer)
	}
	aud, ok := p.accept[k.typ]
	if !ok {
		return c, never, fmt.Errorf("%w: issuer may not issue %s", ErrType, k.typ)
	}
	if p.algs&h.alg == 0 {
		return c, never, fmt.Errorf("%w: alg not accepted from this issuer", ErrAlgorithm)
	}
	if err := v.checkTimes(&t, k.maxLifetime, r, allowExpired); err != nil {
		return c, never, err
	}
	if !contains(r.Audience, aud) {
		return c, never, fmt.Errorf("%w: aud does not contain %s", ErrAudience, aud)
	}
	if err := checkCommon(r); err != nil {
		return c, never, err
	}
	if err := k.check(&c); err != nil {
		return c, never, err
	}
	if k.caps != nil {
		for _, cp := range k.caps(&c) {
			rest, ok := strings.CutPrefix(cp, p.namespace)
			if !ok || len(rest) < 2 || rest[0] != ':' {
				return c, never, fmt.Errorf("%w: namespace %s", ErrCapability, p.namespace)
			}
		}
	}
	if len(raw)-dot2-1 != sigSegment {
		return c, never, fmt.Errorf("%w: signature is not 64 bytes", ErrSignature)
	}
	sig, err := v.b64.DecodeString(raw[dot2+1:])
	if err != nil {
		return c, never, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	key, err := p.source.Key(ctx, h.kid)
	if err != nil {
		return c, never, lookupError{err}
	}
	if algOf(key) != h.alg {
		return c, never, fmt.Errorf("%w: alg is not the algorithm of the key", ErrAlgorithm)
	}
	if err := key.Verify(raw[:dot2], sig); err != nil {
		return c, never, ErrSignature
	}
	return c, r.ExpiresAt, nil
}

func algOf(k *keys.PublicKey) algSet {
	switch k.Algorithm() {
	case keys.EdDSA:
		return algEdDSA
	case keys.ES256:
		return algES256
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

// headerNames are the only header parameters accepted.
var headerNames = []string{"alg", "kid", "typ"}

func parseHeader(b []byte, typ string) (header, error) {
	var h header
	d := decoder{b: b}
	if err := d.open('{'); err != nil {
		if errors.Is(err, errWrongType) {
			return h, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
		}
		return h, err
	}
	var alg, kid, gotTyp []byte
	var seen [3]bool
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
			return h, fmt.Errorf("%w: only alg, kid and typ are accepted", ErrHeader)
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
	switch string(alg) {
	case keys.EdDSA:
		h.alg = algEdDSA
	case keys.ES256:
		h.alg = algES256
	default:
		return h, fmt.Errorf("%w: only EdDSA and ES256", ErrAlgorithm)
	}
	if len(kid) == 0 || len(kid) > maxKIDLength {
		return h, fmt.Errorf("%w: kid missing or longer than %d bytes", ErrKeyID, maxKIDLength)
	}
	if !bytes.Equal(gotTyp, []byte(typ)) && !(bytes.HasPrefix(gotTyp, []byte(typPrefix)) && bytes.Equal(gotTyp[len(typPrefix):], []byte(typ))) {
		return h, fmt.Errorf("%w: typ is not %s", ErrType, typ)
	}
	h.kid = string(kid)
	return h, nil
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

func decodeClaims[C any](k *Kind[C], data []byte, c *C, t *times) error {
	d := decoder{b: data, s: string(data)}
	if err := d.open('{'); err != nil {
		if errors.Is(err, errWrongType) {
			return fmt.Errorf("%w: claims set is not a JSON object", ErrMalformed)
		}
		return err
	}
	r := k.reg(c)
	var unknown names
	for first, n := true, 0; ; n++ {
		name, ok, err := d.member(&first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if n == maxTopMembers {
			return fmt.Errorf("%w: more than %d claims", ErrTooLarge, maxTopMembers)
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
				return fmt.Errorf("%w: case variant of a registered claim name", ErrDuplicateName)
			}
			if err := unknown.add(name); err != nil {
				return fmt.Errorf("%w: claim name repeated", err)
			}
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		bit := uint64(1) << f
		if t.seen&bit != 0 {
			return fmt.Errorf("%w: claim %s repeated", ErrDuplicateName, k.all[f])
		}
		t.seen |= bit
		if f < len(registeredNames) {
			err = decodeRegistered(r, f, &d, t)
		} else {
			err = k.decode(c, f-len(registeredNames), &d)
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", k.all[f], err)
		}
	}
	return d.end()
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
	case 3:
		t.exp, err = d.int(0, numericDateMax)
		r.ExpiresAt = time.Unix(t.exp, 0)
	case 4:
		t.nbf, err = d.int(0, numericDateMax)
		r.NotBefore = time.Unix(t.nbf, 0)
	case 5:
		t.iat, err = d.int(0, numericDateMax)
		r.IssuedAt = time.Unix(t.iat, 0)
	case 6:
		r.ID, err = d.string()
	}
	return err
}

func (v *Verifier) checkTimes(t *times, maxLifetime time.Duration, r *Registered, allowExpired bool) error {
	if t.seen&bitExp == 0 {
		return fmt.Errorf("%w: claim exp required", ErrClaims)
	}
	if t.seen&bitIat == 0 {
		return fmt.Errorf("%w: claim iat required", ErrClaims)
	}
	now := v.now()
	if !allowExpired && now.After(r.ExpiresAt.Add(v.leeway)) {
		return fmt.Errorf("%w: exp passed", ErrExpired)
	}
	late := now.Add(v.leeway)
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
