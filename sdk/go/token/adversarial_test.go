package token_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// adversarialCase is a hostile or broken token and the exact sentinel its
// verification must fail with.
type adversarialCase struct {
	name string
	// raw builds the token from the fixture.
	raw func(tb testing.TB, f *fixture) string
	// kind is the kind it is verified as: "confirmation" (default),
	// "transaction", "checkout", "access".
	kind string
	want error
}

// forgedConf signs a confirmation from issuer with header and claim edits.
func forgedConf(issuer string, hdrEdits []string, claimEdits ...string) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		k := f.key(tb, issuer)
		return forge(tb, k, header(k, "confirmation+jwt").with(hdrEdits...).String(), confClaims(issuer).with(claimEdits...).String())
	}
}

func claimsEdit(edits ...string) func(testing.TB, *fixture) string {
	return forgedConf("coupons", nil, edits...)
}

func headerEdit(edits ...string) func(testing.TB, *fixture) string {
	return forgedConf("coupons", edits)
}

// unsigned builds header.claims.sig from raw strings.
func unsigned(hdr string, sig []byte) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		return b64(hdr) + "." + b64(confClaims("coupons").String()) + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
}

// mutate edits a valid coupons confirmation token.
func mutate(fn func(tb testing.TB, f *fixture, raw string) string) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string { return fn(tb, f, f.confirmation(tb, "coupons")) }
}

func parts(raw string) []string { return strings.Split(raw, ".") }

func adversarialCases() []adversarialCase {
	nested := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	many := func(n int, s string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`"`+s+`",`, n), ",") + "]"
	}
	return []adversarialCase{
		// Algorithms (RFC 8725 2.1, 3.1; CVE-2015-9235 and kin).
		{name: "alg none", raw: unsigned(`{"alg":"none","kid":"x","typ":"confirmation+jwt"}`, nil), want: token.ErrAlgorithm},
		{name: "alg None", raw: unsigned(`{"alg":"None","kid":"x","typ":"confirmation+jwt"}`, nil), want: token.ErrAlgorithm},
		{name: "alg NONE", raw: unsigned(`{"alg":"NONE","kid":"x","typ":"confirmation+jwt"}`, nil), want: token.ErrAlgorithm},
		{name: "alg nOnE with signature", raw: unsigned(`{"alg":"nOnE","kid":"x","typ":"confirmation+jwt"}`, make([]byte, 64)), want: token.ErrAlgorithm},
		{name: "HS256 keyed with the issuer public key (alg confusion)", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			input := b64(header(k, "confirmation+jwt").with(`alg="HS256"`).String()) + "." + b64(confClaims("coupons").String())
			m := hmac.New(sha256.New, k.Public().AppendJWK(nil))
			m.Write([]byte(input))
			return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		}, want: token.ErrAlgorithm},
		{name: "RS256", raw: headerEdit(`alg="RS256"`), want: token.ErrAlgorithm},
		{name: "PS256", raw: headerEdit(`alg="PS256"`), want: token.ErrAlgorithm},
		{name: "unknown alg", raw: headerEdit(`alg="EdDSA512"`), want: token.ErrAlgorithm},
		{name: "alg case variant eddsa", raw: headerEdit(`alg="eddsa"`), want: token.ErrAlgorithm},
		{name: "Ed25519 alg name (RFC 9864) not enabled", raw: headerEdit(`alg="Ed25519"`), want: token.ErrAlgorithm},
		{name: "ES256 from an EdDSA-only issuer", raw: headerEdit(`alg="ES256"`), want: token.ErrAlgorithm},
		{name: "EdDSA header on an ES256 key (key/alg confusion)", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "payments")
			ed := f.key(tb, "coupons")
			return forge(tb, ed, header(k, "confirmation+jwt").with(`alg="EdDSA"`).String(), confClaims("payments").String())
		}, want: token.ErrAlgorithm},
		{name: "alg not a string", raw: headerEdit(`alg=null`), want: token.ErrHeader},

		// Keys (RFC 8725 3.10, key confusion across issuers).
		{name: "kid of another issuer's key", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "points")
			return forge(tb, k, header(k, "confirmation+jwt").String(), confClaims("coupons").String())
		}, want: keys.ErrKeyNotFound},
		{name: "unknown kid", raw: headerEdit(`kid="not-a-key"`), want: keys.ErrKeyNotFound},
		{name: "missing kid", raw: headerEdit(`kid=`), want: token.ErrKeyID},
		{name: "empty kid", raw: headerEdit(`kid=""`), want: token.ErrKeyID},
		{name: "oversized kid", raw: headerEdit(`kid="` + strings.Repeat("k", 300) + `"`), want: token.ErrKeyID},

		// Header allow-list (RFC 7515 4.1; CVE-2018-0114 embedded jwk).
		{name: "jku header", raw: headerEdit(`jku="https://evil.example/jwks.json"`), want: token.ErrHeader},
		{name: "x5u header", raw: headerEdit(`x5u="https://evil.example/cert.pem"`), want: token.ErrHeader},
		{name: "embedded jwk header", raw: headerEdit(`jwk={"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`), want: token.ErrHeader},
		{name: "x5c header", raw: headerEdit(`x5c=["MIIB"]`), want: token.ErrHeader},
		{name: "crit header", raw: headerEdit(`crit=["exp"]`), want: token.ErrHeader},
		{name: "b64 false (RFC 7797)", raw: headerEdit(`b64=false`), want: token.ErrHeader},
		{name: "cty header (nested JWT)", raw: headerEdit(`cty="JWT"`), want: token.ErrHeader},
		{name: "zip header", raw: headerEdit(`zip="DEF"`), want: token.ErrHeader},
		{name: "duplicate alg header", raw: headerEdit(`+alg="none"`), want: token.ErrDuplicateName},
		{name: "duplicate kid via escape", raw: headerEdit(`+\u006bid="other"`), want: token.ErrDuplicateName},
		{name: "ALG case variant header", raw: headerEdit(`+ALG="none"`), want: token.ErrDuplicateName},
		{name: "header not an object", raw: unsigned(`["EdDSA"]`, make([]byte, 64)), want: token.ErrMalformed},
		{name: "header invalid UTF-8", raw: headerEdit("kid=\"\xff\xfe\""), want: token.ErrMalformed},

		// Type (RFC 8725 3.11: cross-JWT confusion).
		{name: "missing typ", raw: headerEdit(`typ=`), want: token.ErrType},
		{name: "typ JWT", raw: headerEdit(`typ="JWT"`), want: token.ErrType},
		{name: "typ case variant", raw: headerEdit(`typ="Confirmation+JWT"`), want: token.ErrType},
		{name: "transaction token presented as confirmation", raw: func(tb testing.TB, f *fixture) string { return f.transaction(tb) }, want: token.ErrType},
		{name: "confirmation presented as transaction token", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw }), kind: "transaction", want: token.ErrType},
		{name: "kind the issuer may not issue", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "checkout+jwt").String(), confClaims("coupons").with(`aud="coupons"`, `currency="EUR"`, `amount_minor=1`).String())
		}, kind: "checkout", want: token.ErrType},

		// Strict JSON (RFC 7519 4, RFC 8259 4; CVE-2020-28042-style parser
		// differentials).
		{name: "duplicate exp", raw: claimsEdit(fmt.Sprintf("+exp=%d", epoch.Unix()+9999)), want: token.ErrDuplicateName},
		{name: "duplicate iss via escape", raw: claimsEdit(`+\u0069ss="points"`), want: token.ErrDuplicateName},
		{name: "case-variant EXP", raw: claimsEdit(`+EXP=1`), want: token.ErrDuplicateName},
		{name: "long-s fold of a registered claim name", raw: claimsEdit("+\u017fub=\"admin\""), want: token.ErrDuplicateName},
		{name: "Kelvin-sign fold of a header parameter", raw: headerEdit("+\u212aid=\"x\""), want: token.ErrDuplicateName},
		{name: "duplicate unknown claim", raw: claimsEdit(`+x=1`, `+x=2`), want: token.ErrDuplicateName},
		{name: "duplicate settlement member", raw: claimsEdit(`settlement={"amount_minor":500,"currency":"EUR","amount_minor":0}`), want: token.ErrDuplicateName},
		{name: "duplicate constraint name", raw: claimsEdit(`constraints={"a":"1","a":"2"}`), want: token.ErrDuplicateName},
		{name: "claims not an object", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").String(), `["iss","coupons"]`)
		}, want: token.ErrMalformed},
		{name: "claims a JSON string", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").String(), `"coupons"`)
		}, want: token.ErrMalformed},
		{name: "trailing data after claims", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").String(), confClaims("coupons").String()+`{}`)
		}, want: token.ErrMalformed},
		{name: "deeply nested JSON", raw: claimsEdit(`deep=` + nested), want: token.ErrMalformed},
		{name: "invalid UTF-8 in a claim", raw: claimsEdit("sub=\"\xc3\x28\""), want: token.ErrMalformed},
		{name: "lone surrogate escape", raw: claimsEdit(`sub="\ud800"`), want: token.ErrMalformed},
		{name: "raw control character", raw: claimsEdit("sub=\"a\x01b\""), want: token.ErrMalformed},
		{name: "leading zero number", raw: claimsEdit(`exp=0017`), want: token.ErrMalformed},

		// Typed claims and times (RFC 7519 4.1.4-6, RFC 8725 3.8-3.9).
		{name: "exp missing", raw: claimsEdit(`exp=`), want: token.ErrClaims},
		{name: "exp as string", raw: claimsEdit(fmt.Sprintf(`exp="%d"`, epoch.Unix()+60)), want: token.ErrClaims},
		{name: "exp float overflow", raw: claimsEdit(`exp=1e400`), want: token.ErrClaims},
		{name: "exp fractional", raw: claimsEdit(fmt.Sprintf(`exp=%d.5`, epoch.Unix()+60)), want: token.ErrClaims},
		{name: "exp beyond int64", raw: claimsEdit(`exp=99999999999999999999999`), want: token.ErrClaims},
		{name: "exp negative", raw: claimsEdit(`exp=-1`), want: token.ErrClaims},
		{name: "exp NaN", raw: claimsEdit(`exp=NaN`), want: token.ErrMalformed},
		{name: "exp null", raw: claimsEdit(`exp=null`), want: token.ErrClaims},
		{name: "iat missing", raw: claimsEdit(`iat=`), want: token.ErrClaims},
		{name: "nbf in the future", raw: claimsEdit(fmt.Sprintf(`nbf=%d`, epoch.Unix()+60)), want: token.ErrNotYetValid},
		{name: "iat in the future", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()+60), fmt.Sprintf(`exp=%d`, epoch.Unix()+120)), want: token.ErrNotYetValid},
		{name: "lifetime longer than the kind allows", raw: claimsEdit(fmt.Sprintf(`exp=%d`, epoch.Unix()+301)), want: token.ErrLifetime},
		{name: "exp before iat", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()-5), fmt.Sprintf(`exp=%d`, epoch.Unix()-10)), want: token.ErrLifetime},
		{name: "exp equal to iat", raw: claimsEdit(fmt.Sprintf(`exp=%d`, epoch.Unix())), want: token.ErrLifetime},
		{name: "expired beyond leeway", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()-200), fmt.Sprintf(`exp=%d`, epoch.Unix()-11)), want: token.ErrExpired},
		{name: "aud wrong", raw: claimsEdit(`aud="coupons"`), want: token.ErrAudience},
		{name: "aud missing", raw: claimsEdit(`aud=`), want: token.ErrAudience},
		{name: "aud array without us", raw: claimsEdit(`aud=["coupons","points"]`), want: token.ErrAudience},
		{name: "aud number", raw: claimsEdit(`aud=7`), want: token.ErrClaims},
		{name: "aud array with a number", raw: claimsEdit(`aud=["order-processing",7]`), want: token.ErrClaims},
		{name: "aud array too long", raw: claimsEdit(`aud=` + many(17, "order-processing")), want: token.ErrTooLarge},
		{name: "iss unknown", raw: claimsEdit(`iss="evil"`), want: token.ErrIssuer},
		{name: "iss missing", raw: claimsEdit(`iss=`), want: token.ErrIssuer},
		{name: "iss as array", raw: claimsEdit(`iss=["coupons"]`), want: token.ErrClaims},
		{name: "sub missing", raw: claimsEdit(`sub=`), want: token.ErrClaims},
		{name: "jti missing", raw: claimsEdit(`jti=`), want: token.ErrClaims},
		{name: "capabilities missing", raw: claimsEdit(`capabilities=`), want: token.ErrClaims},
		{name: "settlement currency not ISO 4217", raw: claimsEdit(`settlement={"amount_minor":500,"currency":"eur"}`), want: token.ErrClaims},
		{name: "settlement amount negative", raw: claimsEdit(`settlement={"amount_minor":-500,"currency":"EUR"}`), want: token.ErrClaims},
		{name: "settlement amount fractional", raw: claimsEdit(`settlement={"amount_minor":5.5,"currency":"EUR"}`), want: token.ErrClaims},
		{name: "huge capabilities array", raw: claimsEdit(`capabilities=` + many(100, "coupons:redeem")), want: token.ErrTooLarge},

		// Capability namespace.
		{name: "capability of another namespace, validly signed", raw: claimsEdit(`capabilities=["points:redeem"]`), want: token.ErrCapability},
		{name: "capability namespace prefix trick", raw: claimsEdit(`capabilities=["couponsx:redeem"]`), want: token.ErrCapability},
		{name: "capability bare namespace", raw: claimsEdit(`capabilities=["coupons:"]`), want: token.ErrCapability},
		{name: "one good and one foreign capability", raw: claimsEdit(`capabilities=["coupons:redeem","payments:capture"]`), want: token.ErrCapability},

		// Signatures (RFC 7515 5.2; CVE-2022-21449 psychic signatures).
		{name: "signature stripped", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			return raw[:strings.LastIndexByte(raw, '.')+1]
		}), want: token.ErrSignature},
		{name: "signature of another token", raw: func(tb testing.TB, f *fixture) string {
			a, b := parts(f.confirmation(tb, "coupons")), parts(forgedConf("coupons", nil, `jti="other"`)(tb, f))
			return a[0] + "." + a[1] + "." + b[2]
		}, want: token.ErrSignature},
		{name: "claims altered after signing", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + "." + b64(confClaims("coupons").with(`settlement={"amount_minor":999999,"currency":"EUR"}`).String()) + "." + p[2]
		}), want: token.ErrSignature},
		{name: "ECDSA all-zero signature", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "payments")
			p := parts(forge(tb, k, header(k, "confirmation+jwt").String(), confClaims("payments").String()))
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}, want: token.ErrSignature},
		{name: "ES256 DER signature instead of r||s", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "payments")
			p := parts(forge(tb, k, header(k, "confirmation+jwt").String(), confClaims("payments").String()))
			// The same valid signature by the right key, re-encoded as the
			// ASN.1 DER that crypto/ecdsa produces: JWS requires r||s.
			rs, _ := base64.RawURLEncoding.DecodeString(p[2])
			der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])})
			if err != nil {
				tb.Fatal(err)
			}
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(der)
		}, want: token.ErrSignature},
		{name: "Ed25519 signature one byte short", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig[:63])
		}), want: token.ErrSignature},
		{name: "Ed25519 signature one byte long", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			return raw + "A"
		}), want: token.ErrSignature},
		{name: "signature bit flipped", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			b := []byte(raw)
			if b[len(b)-5] == 'A' {
				b[len(b)-5] = 'B'
			} else {
				b[len(b)-5] = 'A'
			}
			return string(b)
		}), want: token.ErrSignature},

		// Encoding and structure (RFC 7515 2, 7.1).
		{name: "empty token", raw: func(testing.TB, *fixture) string { return "" }, want: token.ErrMalformed},
		{name: "two segments (truncated)", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			return raw[:strings.LastIndexByte(raw, '.')]
		}), want: token.ErrMalformed},
		{name: "truncated inside the claims", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + "." + p[1][:len(p[1])/2] + "." + p[2]
		}), want: token.ErrMalformed},
		{name: "five segments (JWE)", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw + ".AAAA.AAAA" }), want: token.ErrMalformed},
		{name: "base64 padding", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + "==." + p[1] + "." + p[2]
		}), want: token.ErrMalformed},
		{name: "standard alphabet characters", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			return strings.NewReplacer("-", "+", "_", "/").Replace(raw) + "+/"
		}), want: token.ErrMalformed},
		{name: "non-canonical base64 trailing bits", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			// 86 characters carry 516 bits for 512: the last character's
			// low bits must be zero. 'B' sets one of them.
			sig := []byte(p[2])
			sig[len(sig)-1] = 'B'
			return p[0] + "." + p[1] + "." + string(sig)
		}), want: token.ErrMalformed},
		{name: "embedded newline", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + "." + p[1][:10] + "\n" + p[1][10:] + "." + p[2]
		}), want: token.ErrMalformed},
		{name: "surrounding whitespace", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return " " + raw + "\n" }), want: token.ErrMalformed},
		{name: "Bearer prefix left on", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return "Bearer " + raw }), want: token.ErrMalformed},
		{name: "oversize token", raw: claimsEdit(`pad="` + strings.Repeat("a", 9000) + `"`), want: token.ErrTooLarge},
		{name: "oversize header segment", raw: headerEdit(`kid="` + strings.Repeat("k", 900) + `"`), want: token.ErrTooLarge},

		// Kind-specific.
		{name: "access token typ JWT", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "identity")
			return forge(tb, k, header(k, "JWT").String(), `{}`)
		}, kind: "access", want: token.ErrType},
		{name: "transaction token without txn", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "gateway")
			now := epoch.Unix()
			return forge(tb, k, header(k, "txntoken+jwt").String(),
				fmt.Sprintf(`{"iss":"gateway","sub":"u","aud":"tokenrelay","iat":%d,"exp":%d}`, now, now+60))
		}, kind: "transaction", want: token.ErrClaims},
		{name: "transaction tctx with a non-string value", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "gateway")
			now := epoch.Unix()
			return forge(tb, k, header(k, "txntoken+jwt").String(),
				fmt.Sprintf(`{"iss":"gateway","sub":"u","aud":"tokenrelay","iat":%d,"exp":%d,"txn":"t","tctx":{"tenant":{"id":1}}}`, now, now+60))
		}, kind: "transaction", want: token.ErrClaims},

		// Accepted variants: these must verify.
		{name: "valid EdDSA confirmation", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw }), want: nil},
		{name: "valid ES256 confirmation", raw: func(tb testing.TB, f *fixture) string { return f.confirmation(tb, "payments") }, want: nil},
		{name: "typ with application/ prefix", raw: headerEdit(`typ="application/confirmation+jwt"`), want: nil},
		{name: "expired within leeway", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()-100), fmt.Sprintf(`exp=%d`, epoch.Unix()-9)), want: nil},
		{name: "aud array containing us", raw: claimsEdit(`aud=["points","order-processing"]`), want: nil},
		{name: "unknown claim ignored", raw: claimsEdit(`acr="1"`, `extra={"nested":[1,2.5e3,true,null]}`), want: nil},
		{name: "whitespace inside JSON", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, " \n"+header(k, "confirmation+jwt").String()+"\t", strings.ReplaceAll(confClaims("coupons").String(), ",", " ,\r\n "))
		}, want: nil},
	}
}

func verifyAs(ctx context.Context, v *token.Verifier, kind, raw string) error {
	var err error
	switch kind {
	case "", "confirmation":
		_, err = token.Verify(ctx, v, token.Confirmation, raw)
	case "transaction":
		_, err = token.Verify(ctx, v, token.Transaction, raw)
	case "checkout":
		_, err = token.Verify(ctx, v, token.Checkout, raw)
	case "access":
		_, err = token.Verify(ctx, v, token.Access, raw)
	default:
		panic("unknown kind " + kind)
	}
	return err
}

func TestAdversarial(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cases := adversarialCases()
	defects := 0
	for _, tc := range cases {
		if tc.want != nil {
			defects++
		}
	}
	if defects < 40 {
		t.Fatalf("only %d adversarial cases", defects)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := tc.raw(t, f)
			err := verifyAs(context.Background(), f.v, tc.kind, raw)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, token.ErrInvalid) || token.Reason(err) == "" {
				t.Fatalf("err = %v: not a token defect with a reason", err)
			}
			msg := err.Error() + " " + token.Sentinel(err).Error()
			if raw != "" && strings.Contains(msg, raw) {
				t.Fatalf("error echoes the token: %q", msg)
			}
			for _, seg := range strings.Split(raw, ".") {
				if len(seg) >= 8 && strings.Contains(msg, seg) {
					t.Fatalf("error echoes a token segment: %q", msg)
				}
			}
		})
	}
}
