package token_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// benchVerifier returns a verifier that finds the coupons and points keys
// through a warm jwks.Cache, as OrderProcessing does in the scaled-out
// deployment, with the full confirmation policy.
func benchVerifier(b *testing.B, f *fixture, opts ...token.Option) *token.Verifier {
	b.Helper()
	cache, err := jwks.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cache.Close)
	all := []token.Option{token.WithClock(func() time.Time { return epoch })}
	for _, iss := range []string{"coupons", "points", "gateway"} {
		srv := httptest.NewServer(f.rings[iss].Handler())
		b.Cleanup(srv.Close)
		src, err := cache.Add(iss, srv.URL+"/.well-known/jwks.json")
		if err != nil {
			b.Fatal(err)
		}
		if err := cache.Refresh(context.Background(), iss); err != nil {
			b.Fatal(err)
		}
		switch iss {
		case "gateway":
			all = append(all, token.Trust(iss, src, token.Accept(token.Transaction, "tokenrelay")))
		default:
			all = append(all, token.Trust(iss, src, token.Accept(token.Confirmation, "order-processing"), token.Namespace(iss)))
		}
	}
	v, err := token.NewVerifier(append(all, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	return v
}

func BenchmarkVerifyConfirmation(b *testing.B) {
	f := newFixture(b)
	v := benchVerifier(b, f)
	raw := f.confirmation(b, "coupons")
	ctx := context.Background()
	if _, err := token.Verify(ctx, v, token.Confirmation, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.Verify(ctx, v, token.Confirmation, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519VerifyFloor is the physical floor of
// BenchmarkVerifyConfirmation: the bare signature check over the same
// signing input, with the key and signature already decoded.
func BenchmarkEd25519VerifyFloor(b *testing.B) {
	f := newFixture(b)
	raw := f.confirmation(b, "coupons")
	dot := strings.LastIndexByte(raw, '.')
	input := []byte(raw[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(raw[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := f.key(b, "coupons").Public().Key().(ed25519.PublicKey)
	if !ed25519.Verify(pub, input, sig) {
		b.Fatal("floor signature does not verify")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkIssueConfirmation(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	claims := token.ConfirmationClaims{
		Registered:        token.Registered{Subject: "user-1", Audience: []string{"order-processing"}},
		OrderProcessingID: "op_1",
		Capabilities:      []string{"coupons:redeem"},
		Constraints:       map[string]string{"amount_sha256": "abc"},
		Settlement:        token.Settlement{AmountMinor: 500, Currency: "EUR"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := token.Issue(ctx, f.issuers["coupons"], token.Confirmation, claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCachedTransactionToken(b *testing.B) {
	f := newFixture(b)
	v := benchVerifier(b, f, token.WithVerifiedCache(10_000))
	raw := f.transaction(b)
	ctx := context.Background()
	if _, err := token.Verify(ctx, v, token.Transaction, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.Verify(ctx, v, token.Transaction, raw); err != nil {
			b.Fatal(err)
		}
	}
}
