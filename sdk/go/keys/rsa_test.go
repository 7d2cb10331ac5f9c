package keys_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSA returns one 2048-bit key for the whole package: generating one
// costs a noticeable fraction of a second.
func testRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func rsaJWK(k *rsa.PublicKey, extra string) string {
	b := func(x []byte) string { return base64.RawURLEncoding.EncodeToString(x) }
	return `{"kty":"RSA","kid":"r1","n":"` + b(k.N.Bytes()) + `","e":"` + b(big.NewInt(int64(k.E)).Bytes()) + `"` + extra + `}`
}

// TestParseJWKSRSA: an RSA member of a JWKS is a verification key, RS256
// without "alg" (Entra ID publishes none) and bound to its "alg"
// otherwise; x5c and x5t are ignored; what is not usable is ignored with
// the rest of the set kept.
func TestParseJWKSRSA(t *testing.T) {
	t.Parallel()
	priv := testRSA(t)
	input := "header.payload"
	sum := sha256.Sum256([]byte(input))
	pkcs1, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	pss, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extra, alg string
		good, bad        []byte
	}{
		{"no alg", `,"use":"sig","x5t":"abc","x5c":["MIIB"]`, keys.RS256, pkcs1, pss},
		{"RS256", `,"alg":"RS256"`, keys.RS256, pkcs1, pss},
		{"PS256", `,"alg":"PS256"`, keys.PS256, pss, pkcs1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := keys.ParseJWKS([]byte(`{"keys":[` + rsaJWK(&priv.PublicKey, tc.extra) + `]}`))
			if err != nil || len(got) != 1 {
				t.Fatalf("ParseJWKS = %d keys, %v; want 1", len(got), err)
			}
			k := got[0]
			if k.Algorithm() != tc.alg || k.KID() != "r1" {
				t.Fatalf("alg %s kid %s, want %s r1", k.Algorithm(), k.KID(), tc.alg)
			}
			if err := k.Verify(input, tc.good); err != nil {
				t.Errorf("signature of %s refused: %v", tc.alg, err)
			}
			if err := k.Verify(input, tc.bad); !errors.Is(err, keys.ErrBadSignature) {
				t.Errorf("signature of the other RSA algorithm: err = %v, want ErrBadSignature", err)
			}
			// The JWK round-trips, and its thumbprint is RFC 7638's.
			again, err := keys.ParseJWK(k.AppendJWK(nil))
			if err != nil || again.Thumbprint() != k.Thumbprint() || again.Algorithm() != tc.alg {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

// TestRSAThumbprint is RFC 7638 section 3.1's example.
func TestRSAThumbprint(t *testing.T) {
	t.Parallel()
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	k, err := keys.ParseJWK([]byte(`{"kty":"RSA","n":"` + n + `","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.Thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

// TestParseJWKSRSAUnusable: an RSA member too weak, too large, not
// minimal or for another algorithm is ignored, the set's other keys kept;
// one with private members refuses the set.
func TestParseJWKSRSAUnusable(t *testing.T) {
	t.Parallel()
	ed, err := keys.GenerateKey(keys.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	good := string(ed.Public().AppendJWK(nil))
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	strong := &testRSA(t).PublicKey
	b := func(x []byte) string { return base64.RawURLEncoding.EncodeToString(x) }
	big8k := b(append([]byte{0x80}, make([]byte, 1023)...))
	for name, member := range map[string]string{
		"1024 bits":         rsaJWK(&weak.PublicKey, ""),
		"8192 bits":         `{"kty":"RSA","kid":"r","n":"` + big8k + `","e":"AQAB"}`,
		"leading zero in n": `{"kty":"RSA","kid":"r","n":"` + b(append([]byte{0}, strong.N.Bytes()...)) + `","e":"AQAB"}`,
		"even exponent":     `{"kty":"RSA","kid":"r","n":"` + b(strong.N.Bytes()) + `","e":"AQAC"}`,
		"exponent 1":        `{"kty":"RSA","kid":"r","n":"` + b(strong.N.Bytes()) + `","e":"AQ"}`,
		"alg ES256":         rsaJWK(strong, `,"alg":"ES256"`),
		"alg RS384":         rsaJWK(strong, `,"alg":"RS384"`),
		"no e":              `{"kty":"RSA","kid":"r","n":"` + b(strong.N.Bytes()) + `"}`,
		"padded n":          `{"kty":"RSA","kid":"r","n":"` + base64.URLEncoding.EncodeToString(strong.N.Bytes()[:255]) + `=","e":"AQAB"}`,
		"no kid":            strings.Replace(rsaJWK(strong, ""), `"kid":"r1",`, "", 1),
		"crv on an RSA key": rsaJWK(strong, `,"crv":"P-256"`),
		"use enc":           rsaJWK(strong, `,"use":"enc"`),
		"n is not a string": `{"kty":"RSA","kid":"r","n":7,"e":"AQAB"}`,
		"e longer than 4 B": `{"kty":"RSA","kid":"r","n":"` + b(strong.N.Bytes()) + `","e":"AQAAAAE"}`,
	} {
		got, err := keys.ParseJWKS([]byte(`{"keys":[` + member + `,` + good + `]}`))
		if err != nil || len(got) != 1 || got[0].KID() != ed.KID() {
			t.Errorf("%s: %d keys, err %v; want the Ed25519 key alone", name, len(got), err)
		}
	}
	private := rsaJWK(strong, `,"d":"AQAB"`)
	if _, err := keys.ParseJWKS([]byte(`{"keys":[` + private + `]}`)); !errors.Is(err, keys.ErrMalformedKey) {
		t.Errorf("RSA private key: err = %v, want ErrMalformedKey", err)
	}
	if _, err := keys.NewRSAPublicKey("", &weak.PublicKey, keys.RS256); !errors.Is(err, keys.ErrMalformedKey) {
		t.Errorf("NewRSAPublicKey of 1024 bits: err = %v, want ErrMalformedKey", err)
	}
	if _, err := keys.NewRSAPublicKey("", strong, "HS256"); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
		t.Errorf("NewRSAPublicKey for HS256: err = %v, want ErrUnsupportedAlgorithm", err)
	}
}
