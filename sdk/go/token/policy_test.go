package token_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

func TestKinds(t *testing.T) {
	t.Parallel()
	var names []string
	for _, k := range token.Kinds() {
		names = append(names, k.Name())
		// A media type: any letter case (as the verifier compares it).
		for _, typ := range []string{k.Typ(), "application/" + k.Typ(), strings.ToUpper(k.Typ()), "Application/" + strings.ToUpper(k.Typ())} {
			if got, ok := token.KindOf(typ); !ok || got.Name() != k.Name() {
				t.Errorf("KindOf(%q) = %v, %v", typ, got, ok)
			}
		}
		if k.String() == "" || k.CarriesCapabilities() != (k.Name() == "confirmation") {
			t.Errorf("kind %s: %q, capabilities %v", k.Name(), k.String(), k.CarriesCapabilities())
		}
	}
	if !slices.Equal(names, []string{"access", "transaction", "checkout", "confirmation", "workload", "assertion"}) {
		t.Fatalf("Kinds = %v", names)
	}
	if _, ok := token.KindOf("JWT"); ok {
		t.Fatal("KindOf(JWT) found a kind")
	}
	if !slices.Equal(token.HeaderParameters(), []string{"alg", "kid", "typ"}) ||
		!slices.Equal(token.SupportedAlgorithms(), []string{keys.EdDSA, keys.ES256}) {
		t.Fatalf("policy: %v %v", token.HeaderParameters(), token.SupportedAlgorithms())
	}
}

func TestVerifyAny(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	raw := f.confirmation(t, "coupons")
	c, err := token.VerifyAny(t.Context(), f.v, token.Confirmation, raw)
	if claims, ok := c.(token.ConfirmationClaims); err != nil || !ok || claims.Issuer != "coupons" {
		t.Fatalf("VerifyAny = %#v, %v", c, err)
	}
	if _, err := token.VerifyAny(t.Context(), f.v, token.Transaction, raw); !errors.Is(err, token.ErrType) {
		t.Fatalf("VerifyAny as another kind: %v, want ErrType", err)
	}
}
