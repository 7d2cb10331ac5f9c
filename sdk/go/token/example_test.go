package token_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// A domain service issues a confirmation token; OrderProcessing, embedded in
// the same process, verifies it against the domain's ring.
func Example() {
	ctx := context.Background()
	couponsRing, err := keys.NewRing()
	if err != nil {
		panic(err)
	}

	// Coupons: issue.
	issuer, err := token.NewIssuer("coupons", couponsRing)
	if err != nil {
		panic(err)
	}
	raw, _, err := token.Issue(ctx, issuer, token.Confirmation, token.ConfirmationClaims{
		Registered:        token.Registered{Subject: "user-1", Audience: []string{"order-processing"}},
		OrderProcessingID: "op_42",
		Capabilities:      []string{"coupons:redeem"},
		Constraints:       map[string]string{"coupon_id": "WELCOME10"},
		Settlement:        token.Settlement{AmountMinor: 1000, Currency: "EUR"},
	})
	if err != nil {
		panic(err)
	}

	// OrderProcessing: verify, with the coupons policy.
	verifier, err := token.NewVerifier(
		token.Trust("coupons", couponsRing,
			token.Accept(token.Confirmation, "order-processing"),
			token.Namespace("coupons")),
	)
	if err != nil {
		panic(err)
	}
	defer verifier.Close()
	claims, err := token.Verify(ctx, verifier, token.Confirmation, raw)
	if err != nil {
		fmt.Println("refused:", token.Reason(err))
		return
	}
	fmt.Println(claims.Issuer, claims.OrderProcessingID, claims.Capabilities, claims.Settlement.AmountMinor, claims.Settlement.Currency)

	// The same token is not a transaction token.
	_, err = token.Verify(ctx, verifier, token.Transaction, raw)
	fmt.Println(errors.Is(err, token.ErrType), errors.Is(err, token.ErrInvalid), token.Reason(err))
	// Output:
	// coupons op_42 [coupons:redeem] 1000 EUR
	// true true type
}

// The gateway mints one transaction token per request; every service verifies
// it, and with WithVerifiedCache only the first verification in a process
// checks the signature.
func ExampleWithVerifiedCache() {
	ctx := context.Background()
	gatewayRing, err := keys.NewRing()
	if err != nil {
		panic(err)
	}
	gateway, err := token.NewIssuer("gateway", gatewayRing)
	if err != nil {
		panic(err)
	}
	raw, _, err := token.Issue(ctx, gateway, token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: "user-1", Audience: []string{"tokenrelay"}},
		Scope:      "checkout",
		Context:    map[string]string{"tenant": "acme"},
	})
	if err != nil {
		panic(err)
	}

	verifier, err := token.NewVerifier(
		token.Trust("gateway", gatewayRing, token.Accept(token.Transaction, "tokenrelay")),
		token.WithVerifiedCache(100_000),
	)
	if err != nil {
		panic(err)
	}
	defer verifier.Close()
	for hop := range 3 {
		claims, err := token.Verify(ctx, verifier, token.Transaction, raw)
		if err != nil {
			panic(err)
		}
		fmt.Println(hop, claims.Context["tenant"], claims.Txn != "")
	}
	// Output:
	// 0 acme true
	// 1 acme true
	// 2 acme true
}

// OrderProcessing proves who is calling Exercise with a workload token signed
// by its own key and bound to the call (package authn fills proc and req and
// checks them); the domain verifies it with the audience set to itself.
func ExampleIssue_workload() {
	ctx := context.Background()
	opRing, err := keys.NewRing()
	if err != nil {
		panic(err)
	}
	op, err := token.NewIssuer("order-processing", opRing)
	if err != nil {
		panic(err)
	}
	raw, _, err := token.Issue(ctx, op, token.Workload, token.WorkloadClaims{
		Registered:    token.Registered{Audience: []string{"coupons"}},
		Procedure:     "/tokenrelay.capability.v1.CapabilityService/Exercise",
		RequestDigest: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
	})
	if err != nil {
		panic(err)
	}
	coupons, err := token.NewVerifier(token.Trust("order-processing", opRing,
		token.Accept(token.Workload, "coupons"),
		token.Accept(token.Checkout, "coupons")))
	if err != nil {
		panic(err)
	}
	defer coupons.Close()
	caller, err := token.Verify(ctx, coupons, token.Workload, raw)
	fmt.Println(caller.Subject, caller.Procedure, err)
	// Output: order-processing /tokenrelay.capability.v1.CapabilityService/Exercise <nil>
}
