package token

import (
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Defaults and bounds of the options.
const (
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 10 * time.Second
	// MaxLeeway bounds WithLeeway: a larger leeway would stretch every
	// lifetime limit.
	MaxLeeway = 30 * time.Second
	// DefaultMaxTokenSize is the largest token, in bytes, a Verifier reads.
	DefaultMaxTokenSize = 8 << 10
	// MaxTokenSizeLimit bounds WithMaxTokenSize.
	MaxTokenSizeLimit = 64 << 10
)

// Option configures an Issuer (NewIssuer) or a Verifier (NewVerifier). An
// option that applies to only one of them makes the other's constructor fail
// with ErrConfig, so a misplaced option is never silently ignored.
type Option func(*settings) error

type role int

const (
	roleIssuer role = iota + 1
	roleVerifier
)

type settings struct {
	role      role
	now       func() time.Time
	rand      io.Reader
	leeway    time.Duration
	maxSize   int
	cacheSize int64
	policies  map[string]*policy
}

func (s *settings) only(r role, name string) error {
	if s.role != r {
		return fmt.Errorf("%w: %s does not apply here", ErrConfig, name)
	}
	return nil
}

// WithClock sets the clock of an Issuer (iat, default exp) or a Verifier
// (expiry checks). Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrConfig)
		}
		s.now = now
		return nil
	}
}

// WithRandom sets the source of the random jti and txn values an Issuer
// fills in. Issuer only. Default crypto/rand.Reader; anything weaker makes
// ids guessable.
func WithRandom(r io.Reader) Option {
	return func(s *settings) error {
		if err := s.only(roleIssuer, "WithRandom"); err != nil {
			return err
		}
		s.rand = r
		return nil
	}
}

// WithLeeway sets the clock skew tolerated on exp, nbf and iat. Verifier
// only. Default DefaultLeeway; values are clamped to [0, MaxLeeway].
func WithLeeway(d time.Duration) Option {
	return func(s *settings) error {
		if err := s.only(roleVerifier, "WithLeeway"); err != nil {
			return err
		}
		s.leeway = min(max(d, 0), MaxLeeway)
		return nil
	}
}

// WithMaxTokenSize sets the largest token, in bytes, a Verifier reads; larger
// tokens fail with ErrTooLarge before any decoding. Verifier only. Default
// DefaultMaxTokenSize; values are clamped to [512, MaxTokenSizeLimit].
func WithMaxTokenSize(n int) Option {
	return func(s *settings) error {
		if err := s.only(roleVerifier, "WithMaxTokenSize"); err != nil {
			return err
		}
		s.maxSize = min(max(n, 512), MaxTokenSizeLimit)
		return nil
	}
}

// WithVerifiedCache makes a Verifier remember up to entries verified tokens
// (keyed by the SHA-256 of the token) in a ristretto cache, so that a token
// presented again, like a transaction token at every hop of a request, is
// verified once. An entry lives no longer than the token, and every hit
// still checks expiry and kind. Verifier only. Default off (0). A key
// removed from an issuer's JWKS stays trusted for the tokens already cached,
// at most for their remaining lifetime.
func WithVerifiedCache(entries int64) Option {
	return func(s *settings) error {
		if err := s.only(roleVerifier, "WithVerifiedCache"); err != nil {
			return err
		}
		if entries < 0 {
			return fmt.Errorf("%w: negative cache size", ErrConfig)
		}
		s.cacheSize = entries
		return nil
	}
}

// Trust makes a Verifier accept tokens whose iss is issuer, with keys found
// only in source (a *keys.Ring in process, or a jwks.Cache source for an
// issuer reachable by URL), under the policy the PolicyOptions describe. At
// least one Accept is required. Verifier only; each issuer may be trusted
// once.
func Trust(issuer string, source keys.Source, opts ...PolicyOption) Option {
	return func(s *settings) error {
		if err := s.only(roleVerifier, "Trust"); err != nil {
			return err
		}
		if issuer == "" || source == nil {
			return fmt.Errorf("%w: Trust needs an issuer name and a key source", ErrConfig)
		}
		if _, dup := s.policies[issuer]; dup {
			return fmt.Errorf("%w: issuer %q trusted twice", ErrConfig, issuer)
		}
		p := &policy{source: source, algs: algEdDSA, accept: make(map[string]string)}
		for _, o := range opts {
			if err := o(p); err != nil {
				return fmt.Errorf("issuer %q: %w", issuer, err)
			}
		}
		if len(p.accept) == 0 {
			return fmt.Errorf("%w: issuer %q: no Accept", ErrConfig, issuer)
		}
		if p.needsNamespace && p.namespace == "" {
			return fmt.Errorf("%w: issuer %q: accepting capabilities needs a Namespace", ErrConfig, issuer)
		}
		if p.profile != nil && (len(p.accept) != 1 || p.accept[Access.typ] == "") {
			return fmt.Errorf("%w: issuer %q: a Profile is for an issuer of access tokens only", ErrConfig, issuer)
		}
		if p.algs&algRSA != 0 && p.profile == nil {
			return fmt.Errorf("%w: issuer %q: RS256 and PS256 are for a foreign issuer with a Profile only", ErrConfig, issuer)
		}
		s.policies[issuer] = p
		return nil
	}
}

// policy is what a Verifier knows about one trusted issuer.
type policy struct {
	source         keys.Source
	algs           algSet
	accept         map[string]string // typ -> required audience
	namespace      string            // "coupons" permits "coupons:*"
	needsNamespace bool
	profile        *profile // a foreign issuer of access tokens; nil: tokenrelay's own
}

type algSet uint8

const (
	algEdDSA algSet = 1 << iota
	algES256
	algRS256
	algPS256

	algRSA = algRS256 | algPS256
)

// PolicyOption describes what one trusted issuer may issue.
type PolicyOption func(*policy) error

// Accept lets the issuer issue tokens of kind k for audience: a token of
// that kind must carry audience in its aud. A genuine token of a kind not
// accepted fails with ErrType (a forged one, like every forgery, with
// ErrSignature).
func Accept(k AnyKind, audience string) PolicyOption {
	return func(p *policy) error {
		if k == nil || k.Typ() == "" || audience == "" {
			return fmt.Errorf("%w: Accept needs a kind and an audience", ErrConfig)
		}
		p.accept[k.Typ()] = audience
		p.needsNamespace = p.needsNamespace || k.CarriesCapabilities()
		return nil
	}
}

// Algorithms sets the algorithms accepted from the issuer: keys.EdDSA,
// keys.ES256, and for a foreign issuer of access tokens (one with a
// Profile) keys.RS256 and keys.PS256. Default keys.EdDSA only. Anything
// else (none, HS*, RS384 ...) is a configuration error: those are never
// accepted.
func Algorithms(algs ...string) PolicyOption {
	return func(p *policy) error {
		p.algs = 0
		for _, a := range algs {
			bit := algNamed(a)
			if bit == 0 {
				return fmt.Errorf("%w: algorithm %q is never accepted", ErrConfig, a)
			}
			p.algs |= bit
		}
		if p.algs == 0 {
			return fmt.Errorf("%w: no algorithm", ErrConfig)
		}
		return nil
	}
}

// Namespace sets the capability namespace the issuer may grant: with
// "coupons", every capability must be "coupons:<action>". Required to accept
// a kind that carries capabilities (Confirmation); a genuine token with any
// capability outside it fails with ErrCapability.
func Namespace(ns string) PolicyOption {
	return func(p *policy) error {
		if ns == "" {
			return fmt.Errorf("%w: empty namespace", ErrConfig)
		}
		p.namespace = ns
		return nil
	}
}

func newSettings(r role, opts []Option) (*settings, error) {
	s := &settings{
		role:     r,
		now:      time.Now,
		rand:     rand.Reader,
		leeway:   DefaultLeeway,
		maxSize:  DefaultMaxTokenSize,
		policies: make(map[string]*policy),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
