package jwtpeers

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	gjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	xjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

const (
	issuer    = "coupons"
	audience  = "order-processing"
	namespace = "coupons:"
	typ       = "confirmation+jwt"
	leeway    = 10 * time.Second
)

// env is one issuer, its JWKS endpoint and one confirmation token, issued at
// a fixed time that every verifier's clock is pinned to.
type env struct {
	now     time.Time
	ring    *keys.Ring
	jwksURL string
	raw     string
}

func newEnv(b *testing.B) *env {
	b.Helper()
	e := &env{now: time.Unix(1_800_000_000, 0)}
	var err error
	if e.ring, err = keys.NewRing(); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(e.ring.Handler())
	b.Cleanup(srv.Close)
	e.jwksURL = srv.URL + keys.WellKnownPath
	is, err := token.NewIssuer(issuer, e.ring, token.WithClock(func() time.Time { return e.now }))
	if err != nil {
		b.Fatal(err)
	}
	e.raw, _, err = token.Issue(context.Background(), is, token.Confirmation, token.ConfirmationClaims{
		Registered:        token.Registered{Subject: "user-1", Audience: []string{audience}},
		OrderProcessingID: "op_1",
		Capabilities:      []string{"coupons:redeem"},
		Constraints:       map[string]string{"amount_sha256": "3a1f"},
		Settlement:        token.Settlement{AmountMinor: 500, Currency: "EUR"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func run(b *testing.B, verify func() error) {
	b.Helper()
	if err := verify(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := verify(); err != nil {
			b.Fatal(err)
		}
	}
}

var errPolicy = errors.New("policy check failed")

func inNamespace(caps []string) error {
	if len(caps) == 0 {
		return errPolicy
	}
	for _, c := range caps {
		if !strings.HasPrefix(c, namespace) || len(c) == len(namespace) {
			return errPolicy
		}
	}
	return nil
}

func BenchmarkEd25519Floor(b *testing.B) {
	e := newEnv(b)
	dot := strings.LastIndexByte(e.raw, '.')
	input := []byte(e.raw[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(e.raw[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	k, err := e.ring.SigningKey()
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public().Key().(ed25519.PublicKey)
	run(b, func() error {
		if !ed25519.Verify(pub, input, sig) {
			return errPolicy
		}
		return nil
	})
}

func BenchmarkTokenrelaySDK(b *testing.B) {
	e := newEnv(b)
	cache, err := jwks.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cache.Close)
	src, err := cache.Add(issuer, e.jwksURL)
	if err != nil {
		b.Fatal(err)
	}
	v, err := token.NewVerifier(
		token.WithClock(func() time.Time { return e.now }),
		token.WithLeeway(leeway),
		token.Trust(issuer, src, token.Accept(token.Confirmation, audience), token.Namespace("coupons")),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	ctx := context.Background()
	run(b, func() error {
		_, err := token.Verify(ctx, v, token.Confirmation, e.raw)
		return err
	})
}

type gjwtClaims struct {
	gjwt.RegisteredClaims
	OrderProcessingID string            `json:"order_processing_id"`
	Capabilities      []string          `json:"capabilities"`
	Constraints       map[string]string `json:"constraints"`
	Settlement        struct {
		AmountMinor int64  `json:"amount_minor"`
		Currency    string `json:"currency"`
	} `json:"settlement"`
}

func BenchmarkGolangJWTKeyfunc(b *testing.B) {
	e := newEnv(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{e.jwksURL})
	if err != nil {
		b.Fatal(err)
	}
	parser := gjwt.NewParser(
		gjwt.WithValidMethods([]string{"EdDSA"}),
		gjwt.WithIssuer(issuer),
		gjwt.WithAudience(audience),
		gjwt.WithExpirationRequired(),
		gjwt.WithIssuedAt(),
		gjwt.WithLeeway(leeway),
		gjwt.WithTimeFunc(func() time.Time { return e.now }),
	)
	run(b, func() error {
		var c gjwtClaims
		tok, err := parser.ParseWithClaims(e.raw, &c, kf.Keyfunc)
		if err != nil {
			return err
		}
		if tok.Header["typ"] != typ {
			return errPolicy
		}
		return inNamespace(c.Capabilities)
	})
}

func BenchmarkJWX(b *testing.B) {
	e := newEnv(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		b.Fatal(err)
	}
	if err := cache.Register(ctx, e.jwksURL); err != nil {
		b.Fatal(err)
	}
	set, err := cache.CachedSet(e.jwksURL)
	if err != nil {
		b.Fatal(err)
	}
	clock := xjwt.ClockFunc(func() time.Time { return e.now })
	raw := []byte(e.raw)
	run(b, func() error {
		tok, err := xjwt.Parse(raw,
			xjwt.WithKeySet(set),
			xjwt.WithIssuer(issuer),
			xjwt.WithAudience(audience),
			xjwt.WithClock(clock),
			xjwt.WithAcceptableSkew(leeway),
			xjwt.WithRequiredClaim("exp"),
			xjwt.WithRequiredClaim("iat"),
		)
		if err != nil {
			return err
		}
		if err := checkTyp(e.raw); err != nil {
			return err
		}
		var caps []any
		if err := tok.Get("capabilities", &caps); err != nil {
			return err
		}
		strs := make([]string, 0, len(caps))
		for _, c := range caps {
			s, _ := c.(string)
			strs = append(strs, s)
		}
		return inNamespace(strs)
	})
}

// checkTyp reads typ from the header for libraries whose JWT parser does not
// return the header.
func checkTyp(raw string) error {
	seg, _, _ := strings.Cut(raw, ".")
	hb, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return err
	}
	if h.Typ != typ {
		return errPolicy
	}
	return nil
}

type joseClaims struct {
	Capabilities []string `json:"capabilities"`
}

func BenchmarkGoJose(b *testing.B) {
	e := newEnv(b)
	resp, err := http.Get(e.jwksURL)
	if err != nil {
		b.Fatal(err)
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	algs := []jose.SignatureAlgorithm{jose.EdDSA}
	run(b, func() error {
		tok, err := josejwt.ParseSigned(e.raw, algs)
		if err != nil {
			return err
		}
		h := tok.Headers[0]
		if h.ExtraHeaders["typ"] != typ {
			return errPolicy
		}
		found := set.Key(h.KeyID)
		if len(found) != 1 {
			return errPolicy
		}
		var std josejwt.Claims
		var priv joseClaims
		if err := tok.Claims(found[0].Key, &std, &priv); err != nil {
			return err
		}
		if std.Expiry == nil || std.IssuedAt == nil {
			return errPolicy
		}
		if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: josejwt.Audience{audience}, Time: e.now}, leeway); err != nil {
			return err
		}
		return inNamespace(priv.Capabilities)
	})
}
