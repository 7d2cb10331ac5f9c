package keys_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// TestParseJWKSIgnoresUnusableMembers: RFC 7517 section 5, a set member
// this package cannot use (unknown kty, alg or use, another curve, a value
// out of range, a member of the wrong type) is ignored and the others are
// used; a set that is not valid JSON, or is ambiguous or leaks a private
// key, is still refused whole (TestParseJWKS).
func TestParseJWKSIgnoresUnusableMembers(t *testing.T) {
	t.Parallel()
	ed, err := keys.GenerateKey(keys.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := keys.GenerateKey(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	good := string(ed.Public().AppendJWK(nil))
	// The good key's own members with one changed: usable-looking keys
	// that are not.
	variant := func(old, new string) string {
		s := strings.Replace(good, old, new, 1)
		if s == good {
			t.Fatalf("%q not in %s", old, good)
		}
		return s
	}
	ecJWK := string(ec.Public().AppendJWK(nil))
	junk := []struct{ name, member string }{
		{"unknown alg", variant(`"alg":"EdDSA"`, `"alg":"Ed448"`)},
		{"fully-specified alg (RFC 9864)", variant(`"alg":"EdDSA"`, `"alg":"Ed25519"`)},
		{"alg of another key type", variant(`"alg":"EdDSA"`, `"alg":"ES256"`)},
		{"unknown use", variant(`"use":"sig"`, `"use":"attest"`)},
		{"use enc", variant(`"use":"sig"`, `"use":"enc"`)},
		{"use not a string", variant(`"use":"sig"`, `"use":7`)},
		{"key_ops not a list", variant(`"use":"sig"`, `"key_ops":"verify"`)},
		{"key_ops without verify", variant(`"use":"sig"`, `"key_ops":["sign"]`)},
		{"kid not a string", variant(`"kid":"`+ed.KID()+`"`, `"kid":{"v":1}`)},
		{"no kid", variant(`,"kid":"`+ed.KID()+`"`, ``)},
		{"short x", variant(`"x":"`, `"x":"AAAA`)},
		{"x not a string", `{"kty":"OKP","crv":"Ed25519","x":[1],"kid":"x"}`},
		{"y on an OKP key", variant(`"x":"`, `"y":"AAAA","x":"`)},
		{"other curve", variant(`"crv":"Ed25519"`, `"crv":"Ed448"`)},
		{"unknown kty", `{"kty":"ML-DSA","pub":{"a":[1,2]},"kid":"pq"}`},
		{"symmetric key", `{"kty":"oct","k":"c2VjcmV0","kid":"h"}`},
		{"RSA key of 17 bits", `{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r","alg":"RS256"}`},
		{"P-256 point not on the curve", `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","kid":"e"}`},
		{"not an object", `"a string"`},
		{"null", `null`},
	}
	for _, tc := range junk {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, body := range []string{
				`{"keys":[` + tc.member + `,` + good + `,` + ecJWK + `]}`,
				`{"keys":[` + good + `,` + tc.member + `,` + ecJWK + `]}`,
			} {
				got, err := keys.ParseJWKS([]byte(body))
				if err != nil {
					t.Fatalf("set with one unusable member refused: %v", err)
				}
				if len(got) != 2 || got[0].KID() != ed.KID() || got[1].KID() != ec.KID() {
					t.Fatalf("%d keys, want the 2 usable ones", len(got))
				}
			}
			// Alone, the member makes an empty set, not an error: the
			// caller decides what a set without usable keys means.
			got, err := keys.ParseJWKS([]byte(`{"keys":[` + tc.member + `]}`))
			if err != nil || len(got) != 0 {
				t.Fatalf("set of the unusable member alone: %d keys, err %v; want 0 and nil", len(got), err)
			}
		})
	}
	// A set member that is usable-looking but ambiguous or dangerous still
	// refuses the whole set.
	for name, member := range map[string]string{
		"private key material": variant(`"x":"`, `"d":"AAAA","x":"`),
		"duplicate member":     variant(`"use":"sig"`, `"use":"sig","use":"sig"`),
		"case-variant member":  variant(`"use":"sig"`, `"USE":"enc","use":"sig"`),
	} {
		if _, err := keys.ParseJWKS([]byte(`{"keys":[` + member + `,` + ecJWK + `]}`)); !errors.Is(err, keys.ErrMalformedKey) {
			t.Errorf("%s: err = %v, want ErrMalformedKey", name, err)
		}
	}
}
