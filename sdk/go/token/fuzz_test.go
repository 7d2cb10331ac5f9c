package token_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// FuzzVerify feeds arbitrary strings, seeded with every adversarial case, to
// the verifier as each kind. Verification must never panic, must fail with a
// known sentinel, and must never echo its input.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	for _, tc := range adversarialCases() {
		f.Add(tc.raw(f, fx))
	}
	f.Add(fx.transaction(f))
	sentinels := []error{
		token.ErrTooLarge, token.ErrMalformed, token.ErrDuplicateName, token.ErrHeader, token.ErrAlgorithm,
		token.ErrKeyID, token.ErrType, token.ErrIssuer, token.ErrClaims, token.ErrExpired, token.ErrNotYetValid,
		token.ErrLifetime, token.ErrAudience, token.ErrCapability, token.ErrSignature, keys.ErrKeyNotFound,
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, kind := range []string{"confirmation", "transaction", "checkout", "access"} {
			err := verifyAs(context.Background(), fx.v, kind, raw)
			if err == nil {
				continue
			}
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("%s: unexpected error %v", kind, err)
			}
			if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error echoes the input")
			}
		}
	})
}
