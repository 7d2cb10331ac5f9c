package token_test

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// TestClaimsJudgedAfterSignature: a token whose signature does not verify
// with a key of a trusted issuer is refused as such, whatever its claims
// say, and every such refusal looks the same to the caller, so that a
// forger learns nothing of the policy (trusted issuers, audiences,
// namespaces, kinds, algorithms), a client is never told to fetch a fresh
// token for a forgery, and metrics do not count forgeries as expiries. Only
// a genuine token learns which claim failed.
func TestClaimsJudgedAfterSignature(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		edits   []string
		genuine error // the refusal of the same claims genuinely signed
	}{
		{"expired", []string{"iat=" + at(-200), "exp=" + at(-100)}, token.ErrExpired},
		{"nbf in the future", []string{"nbf=" + at(60)}, token.ErrNotYetValid},
		{"iat in the future", []string{"iat=" + at(60), "exp=" + at(120)}, token.ErrNotYetValid},
		{"lifetime too long", []string{"exp=" + at(3600)}, token.ErrLifetime},
		{"foreign audience", []string{`aud="payments"`}, token.ErrAudience},
		{"foreign namespace", []string{`capabilities=["points:redeem"]`}, token.ErrCapability},
		{"sub missing", []string{`sub=`}, token.ErrClaims},
		{"exp a string", []string{`exp="1"`}, token.ErrClaims},
		{"aud array too long", []string{`aud=["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]`}, token.ErrTooLarge},
		{"unknown issuer", []string{`iss="evil"`}, token.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			genuine := claimsEdit(tc.edits...)(t, f)
			if _, err := token.Verify(ctx, f.v, token.Confirmation, genuine); token.Sentinel(err) != tc.genuine {
				t.Fatalf("genuine: err = %v, want %v", err, tc.genuine)
			}
			for name, raw := range map[string]string{
				"attacker key under the issuer's kid": impostor(tc.edits...)(t, f),
				"attacker's own kid":                  stranger(tc.edits...)(t, f),
			} {
				_, err := token.Verify(ctx, f.v, token.Confirmation, raw)
				wantForgery(t, name, err)
			}
		})
	}
	// The issuer's policy on kinds and algorithms is judged after the
	// signature too.
	for name, tc := range map[string]struct {
		genuine, forged string
		kind            string
		want            error
	}{
		"kind the issuer may not issue": {
			genuine: signedBy("coupons", "coupons", "checkout+jwt", nil, confClaims("coupons").with(`aud="coupons"`, `currency="EUR"`, `amount_minor=1`))(t, f),
			forged:  signedBy("evil-ed", "coupons", "checkout+jwt", nil, confClaims("coupons").with(`aud="coupons"`, `currency="EUR"`, `amount_minor=1`))(t, f),
			kind:    "checkout", want: token.ErrType,
		},
		"algorithm the issuer may not use": {
			genuine: txn("ledger")(t, f),
			forged:  signedBy("evil-es", "ledger", "txntoken+jwt", nil, txnClaims("ledger"))(t, f),
			kind:    "transaction", want: token.ErrAlgorithm,
		},
	} {
		if err := verifyAs(ctx, f.v, tc.kind, tc.genuine); token.Sentinel(err) != tc.want {
			t.Errorf("%s, genuine: err = %v, want %v", name, err, tc.want)
		}
		wantForgery(t, name+", forged", verifyAs(ctx, f.v, tc.kind, tc.forged))
	}
}

// wantForgery checks that err is the refusal of a signature that does not
// verify, and maps to what every other such refusal maps to.
func wantForgery(t *testing.T, name string, err error) {
	t.Helper()
	if token.Sentinel(err) != token.ErrSignature || token.Reason(err) != "signature" || !errors.Is(err, token.ErrInvalid) {
		t.Errorf("%s: err = %v (reason %q), want the signature refusal", name, err, token.Reason(err))
		return
	}
	for _, tc := range []struct {
		opts []rpcerr.TokenOption
		code connect.Code
	}{
		{nil, connect.CodeUnauthenticated},
		// Not FailedPrecondition ("get a fresh confirmation") for an
		// expired forgery: the client must drop it.
		{[]rpcerr.TokenOption{rpcerr.AsArgument()}, connect.CodeInvalidArgument},
	} {
		ce := rpcerr.Token(err, tc.opts...)
		if ce.Code() != tc.code || ce.Message() != token.ErrSignature.Error() {
			t.Errorf("%s: rpcerr.Token = %v %q, want %v %q", name, ce.Code(), ce.Message(), tc.code, token.ErrSignature.Error())
		}
	}
}

// TestUnknownKeyLooksLikeABadSignature: a kid the issuer does not publish is
// refused as a bad signature is (else a forger could tell trusted issuers
// from others by sending a random kid), yet the server itself can still
// tell it apart with errors.Is.
func TestUnknownKeyLooksLikeABadSignature(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := token.Verify(t.Context(), f.v, token.Confirmation, stranger()(t, f))
	wantForgery(t, "unknown kid", err)
	if !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("err = %v: the server lost the key lookup's error", err)
	}
	if ce := rpcerr.Token(err); !errors.Is(ce, keys.ErrKeyNotFound) || !errors.Is(ce, token.ErrSignature) {
		t.Fatalf("rpcerr.Token(%v) = %v: errors.Is lost the chain", err, ce)
	}
}

// TestExpiryBoundary: on or after exp (plus the leeway) a token is expired
// (RFC 7519 4.1.4); on or after nbf (minus the leeway) it is valid (4.1.5).
// The verified-token cache applies the same boundary.
func TestExpiryBoundary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var now atomic.Int64 // nanoseconds since epoch
	clock := func() time.Time { return epoch.Add(time.Duration(now.Load())) }
	ctx := context.Background()
	raw := claimsEdit("iat="+at(-100), "exp="+at(0))(t, f)
	for _, leeway := range []time.Duration{0, 10 * time.Second} {
		for _, cached := range []bool{false, true} {
			opts := []token.Option{token.WithClock(clock), token.WithLeeway(leeway)}
			if cached {
				opts = append(opts, token.WithVerifiedCache(100))
			}
			v := f.verifier(t, opts...)
			for _, tc := range []struct {
				at   time.Duration // after exp
				want error
			}{
				// The first fills the cache for a minute of wall time,
				// so that the others are cache hits.
				{-time.Minute, nil},
				{-time.Second, nil},
				{-time.Nanosecond, nil},
				{0, token.ErrExpired},
				{time.Nanosecond, token.ErrExpired},
				{time.Second, token.ErrExpired},
			} {
				now.Store(int64(leeway + tc.at))
				if _, err := token.Verify(ctx, v, token.Confirmation, raw); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
					t.Errorf("leeway %v, cached %v, exp+leeway%+v: err = %v, want %v", leeway, cached, tc.at, err, tc.want)
				}
			}
			// nbf: valid from nbf - leeway on.
			fresh := claimsEdit("iat="+at(-100), "exp="+at(100), "nbf="+at(0))(t, f)
			for _, tc := range []struct {
				at   time.Duration // after nbf - leeway
				want error
			}{
				{-time.Second, token.ErrNotYetValid},
				{-time.Nanosecond, token.ErrNotYetValid},
				{0, nil},
				{time.Nanosecond, nil},
			} {
				now.Store(int64(-leeway + tc.at))
				if _, err := token.Verify(ctx, v, token.Confirmation, fresh); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
					t.Errorf("leeway %v, cached %v, nbf-leeway%+v: err = %v, want %v", leeway, cached, tc.at, err, tc.want)
				}
			}
		}
	}
}

// TestNoClaimsOnError: Verify, VerifyAllowExpired and VerifyAny return no
// claims with an error, so that no caller can use forged claims by mistake.
func TestNoClaimsOnError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	cachedV := f.verifier(t, token.WithVerifiedCache(100))
	for name, raw := range map[string]string{
		"forged":           impostor(`sub="mallory"`)(t, f),
		"forged, expired":  impostor(`sub="mallory"`, "iat="+at(-200), "exp="+at(-100))(t, f),
		"genuine, expired": claimsEdit("iat="+at(-200), "exp="+at(-100))(t, f),
		"genuine, foreign": claimsEdit(`aud="payments"`)(t, f),
		"unknown issuer":   claimsEdit(`iss="evil"`)(t, f),
		"bad type":         claimsEdit(`capabilities="coupons:redeem"`)(t, f),
	} {
		for _, v := range []*token.Verifier{f.v, cachedV} {
			c, err := token.Verify(ctx, v, token.Confirmation, raw)
			if err == nil || !reflect.ValueOf(c).IsZero() {
				t.Errorf("%s: Verify = %+v, %v; want zero claims and an error", name, c, err)
			}
			a, err := token.VerifyAny(ctx, v, token.Confirmation, raw)
			if err == nil || a != nil {
				t.Errorf("%s: VerifyAny = %#v, %v; want nil and an error", name, a, err)
			}
		}
		if name == "genuine, expired" {
			continue
		}
		c, err := token.VerifyAllowExpired(ctx, f.v, token.Confirmation, raw)
		if err == nil || !reflect.ValueOf(c).IsZero() {
			t.Errorf("%s: VerifyAllowExpired = %+v, %v; want zero claims and an error", name, c, err)
		}
	}
	wl := workload("proc=")(t, f)
	if c, err := token.Verify(ctx, f.v, token.Workload, wl); err == nil || !reflect.ValueOf(c).IsZero() {
		t.Errorf("workload without proc: Verify = %+v, %v; want zero claims and an error", c, err)
	}
}
