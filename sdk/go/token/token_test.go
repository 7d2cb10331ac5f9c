package token_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

func TestIssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reg := func(aud ...string) token.Registered { return token.Registered{Subject: "user-1", Audience: aud} }

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"access", func(t *testing.T) {
			raw, issued, err := token.Issue(ctx, f.issuers["identity"], token.Access, token.AccessClaims{Registered: reg("tokenrelay-api"), ClientID: "web", Scope: "checkout orders"})
			mustOK(t, err)
			got, err := token.Verify(ctx, f.v, token.Access, raw)
			mustOK(t, err)
			if got.ClientID != "web" || got.Scope != "checkout orders" || got.ID != issued.ID || got.ID == "" {
				t.Fatalf("claims = %+v", got)
			}
			if !got.ExpiresAt.Equal(epoch.Add(15*time.Minute)) || !got.IssuedAt.Equal(epoch) {
				t.Fatalf("times = %v %v", got.IssuedAt, got.ExpiresAt)
			}
		}},
		{"transaction", func(t *testing.T) {
			raw := f.transaction(t)
			got, err := token.Verify(ctx, f.v, token.Transaction, raw)
			mustOK(t, err)
			if got.Txn == "" || got.Context["tenant"] != "acme" || got.RequestingWorkload != "gateway" || got.Issuer != "gateway" {
				t.Fatalf("claims = %+v", got)
			}
		}},
		{"checkout", func(t *testing.T) {
			raw, _, err := token.Issue(ctx, f.issuers["order-processing"], token.Checkout, token.CheckoutClaims{
				Registered: reg("coupons", "points", "payments"), OrderProcessingID: "op_1", AmountMinor: 1999, Currency: "EUR",
			})
			mustOK(t, err)
			got, err := token.Verify(ctx, f.v, token.Checkout, raw)
			mustOK(t, err)
			if got.AmountMinor != 1999 || got.Currency != "EUR" || len(got.Audience) != 3 || !got.ExpiresAt.Equal(epoch.Add(30*time.Minute)) {
				t.Fatalf("claims = %+v", got)
			}
		}},
		{"confirmation", func(t *testing.T) {
			got, err := token.Verify(ctx, f.v, token.Confirmation, f.confirmation(t, "points"))
			mustOK(t, err)
			if got.Settlement != (token.Settlement{AmountMinor: 500, Currency: "EUR"}) || got.Capabilities[0] != "points:redeem" ||
				got.Constraints["amount_sha256"] != "abc" || !got.ExpiresAt.Equal(epoch.Add(2*time.Minute)) {
				t.Fatalf("claims = %+v", got)
			}
		}},
		{"workload", func(t *testing.T) {
			raw, _, err := token.Issue(ctx, f.issuers["order-processing"], token.Workload, token.WorkloadClaims{
				Registered: token.Registered{Audience: []string{"coupons"}}, Procedure: wlProcedure, RequestDigest: wlDigest,
			})
			mustOK(t, err)
			got, err := token.Verify(ctx, f.v, token.Workload, raw)
			mustOK(t, err)
			if got.Subject != "order-processing" || got.ID == "" || got.Procedure != wlProcedure || got.RequestDigest != wlDigest {
				t.Fatalf("claims = %+v", got)
			}
			// A workload token is bound to one call: Issue refuses one
			// without it.
			for _, c := range []token.WorkloadClaims{
				{Registered: token.Registered{Audience: []string{"coupons"}}, RequestDigest: wlDigest},
				{Registered: token.Registered{Audience: []string{"coupons"}}, Procedure: wlProcedure},
			} {
				if _, _, err := token.Issue(ctx, f.issuers["order-processing"], token.Workload, c); !errors.Is(err, token.ErrClaims) {
					t.Fatalf("Issue without proc or req: err = %v, want ErrClaims", err)
				}
			}
		}},
		{"transaction with request context and call chain", func(t *testing.T) {
			raw, _, err := token.Issue(ctx, f.issuers["gateway"], token.Transaction, token.TransactionClaims{
				Registered: reg("tokenrelay"), RequestingWorkload: "gateway,order-processing",
				RequestContext: map[string]string{"job": "nightly"},
			})
			mustOK(t, err)
			got, err := token.Verify(ctx, f.v, token.Transaction, raw)
			mustOK(t, err)
			if got.RequestContext["job"] != "nightly" || got.RequestingWorkload != "gateway,order-processing" {
				t.Fatalf("claims = %+v", got)
			}
		}},
		{"assertion", func(t *testing.T) {
			raw, _, err := token.Issue(ctx, f.issuers["order-processing"], token.Assertion, token.AssertionClaims{
				Registered: reg("gateway"), Txn: "txn-1",
			})
			mustOK(t, err)
			got, err := token.Verify(ctx, f.v, token.Assertion, raw)
			mustOK(t, err)
			if got.Subject != "user-1" || got.Txn != "txn-1" || got.ID == "" || !got.ExpiresAt.Equal(epoch.Add(time.Minute)) {
				t.Fatalf("claims = %+v", got)
			}
			// An assertion is no transaction token, whoever signed it.
			if _, err := token.Verify(ctx, f.v, token.Transaction, raw); err == nil {
				t.Fatal("an assertion verified as a transaction token")
			}
		}},
		{"escapes survive", func(t *testing.T) {
			raw, _, err := token.Issue(ctx, f.issuers["gateway"], token.Transaction, token.TransactionClaims{
				Registered: token.Registered{Subject: "\"quoted\"\\\n\u00e9\U0001F600", Audience: []string{"tokenrelay"}},
			})
			mustOK(t, err)
			got, err := token.Verify(ctx, f.v, token.Transaction, raw)
			mustOK(t, err)
			if got.Subject != "\"quoted\"\\\n\u00e9\U0001F600" {
				t.Fatalf("sub = %q", got.Subject)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	valid := func() token.ConfirmationClaims {
		return token.ConfirmationClaims{
			Registered:        token.Registered{Subject: "u", Audience: []string{"order-processing"}},
			OrderProcessingID: "op_1", Capabilities: []string{"coupons:redeem"},
			Settlement: token.Settlement{AmountMinor: 1, Currency: "EUR"},
		}
	}
	tests := []struct {
		name string
		edit func(c *token.ConfirmationClaims)
		want error
	}{
		{"lifetime over the kind maximum", func(c *token.ConfirmationClaims) { c.ExpiresAt = epoch.Add(6 * time.Minute) }, token.ErrLifetime},
		{"exp before iat", func(c *token.ConfirmationClaims) { c.ExpiresAt = epoch.Add(-time.Minute) }, token.ErrLifetime},
		{"another issuer's name", func(c *token.ConfirmationClaims) { c.Issuer = "points" }, token.ErrIssuer},
		{"no audience", func(c *token.ConfirmationClaims) { c.Audience = nil }, token.ErrClaims},
		{"no subject", func(c *token.ConfirmationClaims) { c.Subject = "" }, token.ErrClaims},
		{"no capabilities", func(c *token.ConfirmationClaims) { c.Capabilities = nil }, token.ErrClaims},
		{"bad currency", func(c *token.ConfirmationClaims) { c.Settlement.Currency = "euro" }, token.ErrClaims},
		{"invalid UTF-8", func(c *token.ConfirmationClaims) { c.OrderProcessingID = "op_\xff" }, token.ErrClaims},
		{"too large", func(c *token.ConfirmationClaims) {
			c.Constraints = map[string]string{"blob": strings.Repeat("x", token.DefaultMaxTokenSize)}
		}, token.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tc.edit(&c)
			if _, _, err := token.Issue(ctx, f.issuers["coupons"], token.Confirmation, c); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	mustOK(t, err)
	tests := []struct {
		name string
		new  func() error
	}{
		{"issuer given a verifier option", func() error { _, err := token.NewIssuer("x", ring, token.WithLeeway(time.Second)); return err }},
		{"verifier given an issuer option", func() error {
			_, err := token.NewVerifier(token.WithRandom(nil), token.Trust("x", ring, token.Accept(token.Transaction, "a")))
			return err
		}},
		{"verifier without issuers", func() error { _, err := token.NewVerifier(); return err }},
		{"trust without accept", func() error { _, err := token.NewVerifier(token.Trust("x", ring)); return err }},
		{"confirmation without namespace", func() error {
			_, err := token.NewVerifier(token.Trust("x", ring, token.Accept(token.Confirmation, "order-processing")))
			return err
		}},
		{"HS256 requested", func() error {
			_, err := token.NewVerifier(token.Trust("x", ring, token.Accept(token.Transaction, "a"), token.Algorithms("HS256")))
			return err
		}},
		{"issuer trusted twice", func() error {
			_, err := token.NewVerifier(token.Trust("x", ring, token.Accept(token.Transaction, "a")), token.Trust("x", ring, token.Accept(token.Access, "a")))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.new(); !errors.Is(err, token.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestLeewayClamped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, token.WithLeeway(time.Hour))
	raw := forge(t, f.key(t, "coupons"), header(f.key(t, "coupons"), "confirmation+jwt").String(),
		confClaims("coupons").with(fmt.Sprintf("iat=%d", epoch.Unix()-200), fmt.Sprintf("exp=%d", epoch.Unix()-31)).String())
	if _, err := token.Verify(context.Background(), f.v, token.Confirmation, raw); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired: leeway must be clamped to 30s", err)
	}
}

func TestVerifiedCache(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(epoch.Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	f := newFixture(t, token.WithVerifiedCache(1000), token.WithClock(clock))
	ctx := context.Background()
	raw := f.transaction(t)

	first, err := token.Verify(ctx, f.v, token.Transaction, raw)
	mustOK(t, err)
	first.Context["tenant"] = "mutated"
	second, err := token.Verify(ctx, f.v, token.Transaction, raw)
	mustOK(t, err)
	if second.Context["tenant"] != "acme" {
		t.Fatal("a caller's mutation leaked into the cached claims")
	}
	if _, err := token.Verify(ctx, f.v, token.Confirmation, raw); !errors.Is(err, token.ErrType) {
		t.Fatalf("cached token as another kind: err = %v, want ErrType", err)
	}
	now.Store(epoch.Add(5*time.Minute + 11*time.Second).Unix())
	if _, err := token.Verify(ctx, f.v, token.Transaction, raw); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("expired cached token: err = %v, want ErrExpired", err)
	}
	now.Store(epoch.Unix())
	// A character inside the signature carries six bits of it whatever
	// they are (the last ones end in padding bits, and Ed25519's last byte
	// is often zero already).
	i := len(raw) - 10
	c := byte('A')
	if raw[i] == c {
		c = 'B'
	}
	tampered := raw[:i] + string(c) + raw[i+1:]
	if _, err := token.Verify(ctx, f.v, token.Transaction, tampered); !errors.Is(err, token.ErrSignature) {
		t.Fatalf("tampered token: err = %v, want ErrSignature", err)
	}
}

// A cache sized for n tokens holds n tokens: ristretto's per-item overhead
// must not count against the size (it once kept 233 of 3,000 in a cache of
// 16,384).
func TestVerifiedCacheHoldsItsSize(t *testing.T) {
	t.Parallel()
	const tokens = 3000
	for _, size := range []int64{4096, 16384} {
		f := newFixture(t, token.WithVerifiedCache(size))
		raws := make([]string, tokens)
		for i := range raws {
			raws[i] = f.transaction(t)
			if _, err := token.Verify(context.Background(), f.v, token.Transaction, raws[i]); err != nil {
				t.Fatal(err)
			}
		}
		// ristretto's admission may refuse a few writes under contention;
		// 99 % is far above what per-item cost accounting would keep.
		if got := token.Cached(f.v, raws); got < tokens*99/100 {
			t.Errorf("WithVerifiedCache(%d) holds %d of %d verified tokens", size, got, tokens)
		}
	}
}

func mustOK(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func TestVerifyAllowExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	k := f.key(t, "coupons")
	expired := forge(t, k, header(k, "confirmation+jwt").String(),
		confClaims("coupons").with(fmt.Sprintf("iat=%d", epoch.Unix()-3600), fmt.Sprintf("exp=%d", epoch.Unix()-3500)).String())
	if _, err := token.Verify(ctx, f.v, token.Confirmation, expired); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("Verify: err = %v, want ErrExpired", err)
	}
	c, err := token.VerifyAllowExpired(ctx, f.v, token.Confirmation, expired)
	mustOK(t, err)
	if c.OrderProcessingID != "op_1" {
		t.Fatalf("claims = %+v", c)
	}
	// Every other check still holds.
	for name, raw := range map[string]string{
		"tampered": tamper(expired),
		"lifetime": forge(t, k, header(k, "confirmation+jwt").String(),
			confClaims("coupons").with(fmt.Sprintf("iat=%d", epoch.Unix()-7200), fmt.Sprintf("exp=%d", epoch.Unix()-100)).String()),
		"namespace": forge(t, k, header(k, "confirmation+jwt").String(),
			confClaims("coupons").with(fmt.Sprintf("iat=%d", epoch.Unix()-3600), fmt.Sprintf("exp=%d", epoch.Unix()-3500), `capabilities=["points:spend"]`).String()),
	} {
		if _, err := token.VerifyAllowExpired(ctx, f.v, token.Confirmation, raw); err == nil {
			t.Errorf("%s: VerifyAllowExpired accepted it", name)
		}
	}
}

// tamper changes a token's signature for sure: its last character, to one
// of the alphabet that differs.
func tamper(raw string) string {
	c := byte('A')
	if raw[len(raw)-1] == c {
		c = 'B'
	}
	return raw[:len(raw)-1] + string(c)
}
