package jwks_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// OrderProcessing, scaled out, verifies confirmation tokens from a Coupons
// service it reaches by URL.
func Example() {
	ctx := context.Background()

	// Coupons, elsewhere: a ring, its JWKS endpoint and an issuer.
	couponsRing, err := keys.NewRing()
	if err != nil {
		panic(err)
	}
	couponsSrv := httptest.NewServer(couponsRing.Handler())
	defer couponsSrv.Close()
	coupons, err := token.NewIssuer("coupons", couponsRing)
	if err != nil {
		panic(err)
	}
	raw, _, err := token.Issue(ctx, coupons, token.Confirmation, token.ConfirmationClaims{
		Registered:        token.Registered{Subject: "user-1", Audience: []string{"order-processing"}},
		OrderProcessingID: "op_42",
		Capabilities:      []string{"coupons:redeem"},
		Settlement:        token.Settlement{AmountMinor: 1000, Currency: "EUR"},
	})
	if err != nil {
		panic(err)
	}

	// OrderProcessing: one JWKS cache for all issuers, refreshed in the
	// background, and one verifier.
	cache, err := jwks.New()
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	couponsKeys, err := cache.Add("coupons", couponsSrv.URL+keys.WellKnownPath)
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = cache.Run(runCtx) }()

	verifier, err := token.NewVerifier(token.Trust("coupons", couponsKeys,
		token.Accept(token.Confirmation, "order-processing"),
		token.Namespace("coupons")))
	if err != nil {
		panic(err)
	}
	defer verifier.Close()
	claims, err := token.Verify(ctx, verifier, token.Confirmation, raw)
	fmt.Println(claims.Capabilities, err)
	// Output: [coupons:redeem] <nil>
}
