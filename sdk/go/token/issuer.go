package token

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Issuer signs tokens of any kind for one issuer name with the current key of
// a keys.Signer (normally a *keys.Ring). It is safe for concurrent use.
type Issuer struct {
	name   string
	signer keys.Signer
	now    func() time.Time
	rand   io.Reader
}

// NewIssuer returns an Issuer that signs as name (the iss claim) with signer.
// Options: WithClock, WithRandom.
func NewIssuer(name string, signer keys.Signer, opts ...Option) (*Issuer, error) {
	if name == "" || signer == nil {
		return nil, fmt.Errorf("%w: an issuer needs a name and a signer", ErrConfig)
	}
	s, err := newSettings(roleIssuer, opts)
	if err != nil {
		return nil, err
	}
	return &Issuer{name: name, signer: signer, now: s.now, rand: s.rand}, nil
}

// Name returns the issuer name written to iss.
func (is *Issuer) Name() string { return is.name }

// Issue signs claims as a token of kind k and returns the compact token and
// the claims as signed. It fills iss (the Issuer's name; another non-empty
// value is ErrIssuer), iat (now), exp (iat plus k.DefaultLifetime()), jti (or
// txn for Transaction) with 128 random bits, and sub of a Workload token
// (iss). Times are truncated to whole seconds. It refuses, rather than
// issues, a token that a Verifier would refuse for its own content: exp - iat
// outside (0, k.MaxLifetime()] (ErrLifetime), a missing required claim or
// invalid value (ErrClaims), or a token larger than DefaultMaxTokenSize
// (ErrTooLarge).
func Issue[C any](ctx context.Context, is *Issuer, k Kind[C], claims C) (string, C, error) {
	var zero C
	if k.reg == nil {
		return "", zero, fmt.Errorf("%w: zero Kind", ErrConfig)
	}
	if err := ctx.Err(); err != nil {
		return "", zero, err
	}
	c := k.clone(claims)
	r := k.reg(&c)
	switch r.Issuer {
	case "":
		r.Issuer = is.name
	case is.name:
	default:
		return "", zero, fmt.Errorf("%w: iss is not this issuer's name", ErrIssuer)
	}
	if r.IssuedAt.IsZero() {
		r.IssuedAt = is.now()
	}
	r.IssuedAt = time.Unix(r.IssuedAt.Unix(), 0)
	if r.ExpiresAt.IsZero() {
		r.ExpiresAt = r.IssuedAt.Add(k.defaultLifetime)
	}
	r.ExpiresAt = time.Unix(r.ExpiresAt.Unix(), 0)
	if !r.NotBefore.IsZero() {
		r.NotBefore = time.Unix(r.NotBefore.Unix(), 0)
	}
	if life := r.ExpiresAt.Sub(r.IssuedAt); life <= 0 || life > k.maxLifetime {
		return "", zero, fmt.Errorf("%w: exp - iat must be in (0, %v]", ErrLifetime, k.maxLifetime)
	}
	if r.IssuedAt.Unix() < 0 || r.ExpiresAt.Unix() > numericDateMax {
		return "", zero, fmt.Errorf("%w: times out of range", ErrClaims)
	}
	var id [16]byte
	if _, err := io.ReadFull(is.rand, id[:]); err != nil {
		return "", zero, fmt.Errorf("token: random id: %w", err)
	}
	k.fill(&c, base64.RawURLEncoding.EncodeToString(id[:]))
	if err := checkCommon(r); err != nil {
		return "", zero, err
	}
	if err := k.check(&c); err != nil {
		return "", zero, err
	}
	key, err := is.signer.SigningKey()
	if err != nil {
		return "", zero, fmt.Errorf("token: signing key: %w", err)
	}

	h := encoder{}
	h.b = append(h.b, '{')
	h.str("alg", key.Algorithm())
	h.str("kid", key.KID())
	h.str("typ", k.typ)
	h.b = append(h.b, '}')

	e := encoder{}
	e.b = append(e.b, '{')
	e.str("iss", r.Issuer)
	e.str("sub", r.Subject)
	if len(r.Audience) == 1 {
		e.str("aud", r.Audience[0])
	} else {
		e.strs("aud", r.Audience)
	}
	e.int("iat", r.IssuedAt.Unix())
	if !r.NotBefore.IsZero() {
		e.int("nbf", r.NotBefore.Unix())
	}
	e.int("exp", r.ExpiresAt.Unix())
	e.str("jti", r.ID)
	k.encode(&c, &e)
	e.b = append(e.b, '}')
	if e.err != nil {
		return "", zero, e.err
	}

	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(h.b))+enc.EncodedLen(len(e.b))+2+enc.EncodedLen(64))
	out = enc.AppendEncode(out, h.b)
	out = append(out, '.')
	out = enc.AppendEncode(out, e.b)
	sig, err := key.Sign(string(out))
	if err != nil {
		return "", zero, err
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	if len(out) > DefaultMaxTokenSize {
		return "", zero, fmt.Errorf("%w: token exceeds %d bytes", ErrTooLarge, DefaultMaxTokenSize)
	}
	return string(out), c, nil
}
