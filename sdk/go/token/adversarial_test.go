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
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// adversarialCase is a hostile or broken token and the exact sentinel its
// verification must fail with.
type adversarialCase struct {
	name string
	// raw builds the token from the fixture.
	raw func(tb testing.TB, f *fixture) string
	// kind is the kind it is verified as: "confirmation" (default),
	// "transaction", "checkout", "access", "workload".
	kind string
	// opts, when set, verify with the fixture's trust and these options
	// (such as WithLeeway(0)) instead of the fixture's verifier.
	opts []token.Option
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
	return append([]adversarialCase{
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
		{name: "ES256 from an EdDSA-only issuer", raw: headerEdit(`alg="ES256"`), want: token.ErrSignature},
		{name: "EdDSA header on an ES256 key (key/alg confusion)", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "payments")
			ed := f.key(tb, "coupons")
			return forge(tb, ed, header(k, "confirmation+jwt").with(`alg="EdDSA"`).String(), confClaims("payments").String())
		}, want: token.ErrSignature},
		{name: "alg not a string", raw: headerEdit(`alg=null`), want: token.ErrHeader},

		// Keys (RFC 8725 3.10, key confusion across issuers).
		{name: "kid of another issuer's key", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "points")
			return forge(tb, k, header(k, "confirmation+jwt").String(), confClaims("coupons").String())
		}, want: token.ErrSignature},
		{name: "unknown kid", raw: headerEdit(`kid="not-a-key"`), want: token.ErrSignature},
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
		{name: "typ case variant (a media type: case-insensitive)", raw: headerEdit(`typ="Confirmation+JWT"`), want: nil},
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
		{name: "exp fractional (RFC 7519 2: NumericDate may be non-integer)", raw: claimsEdit(fmt.Sprintf(`exp=%d.5`, epoch.Unix()+60)), want: nil},
		{name: "exp beyond int64", raw: claimsEdit(`exp=99999999999999999999999`), want: token.ErrClaims},
		{name: "exp negative", raw: claimsEdit(`exp=-1`), want: token.ErrClaims},
		{name: "exp NaN", raw: claimsEdit(`exp=NaN`), want: token.ErrMalformed},
		{name: "exp null", raw: claimsEdit(`exp=null`), want: token.ErrClaims},
		{name: "iat missing", raw: claimsEdit(`iat=`), want: token.ErrClaims},
		{name: "nbf in the future", raw: claimsEdit(fmt.Sprintf(`nbf=%d`, epoch.Unix()+60)), want: token.ErrNotYetValid},
		{name: "iat in the future", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()+60), fmt.Sprintf(`exp=%d`, epoch.Unix()+120)), want: token.ErrNotYetValid},
		{name: "lifetime longer than the kind allows", raw: claimsEdit(fmt.Sprintf(`exp=%d`, epoch.Unix()+301)), want: token.ErrLifetime},
		{name: "exp before iat", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()-5), fmt.Sprintf(`exp=%d`, epoch.Unix()-9)), want: token.ErrLifetime},
		{name: "exp equal to iat", raw: claimsEdit(fmt.Sprintf(`exp=%d`, epoch.Unix())), want: token.ErrLifetime},
		{name: "expired beyond leeway", raw: claimsEdit(fmt.Sprintf(`iat=%d`, epoch.Unix()-200), fmt.Sprintf(`exp=%d`, epoch.Unix()-11)), want: token.ErrExpired},
		{name: "aud wrong", raw: claimsEdit(`aud="coupons"`), want: token.ErrAudience},
		{name: "aud missing", raw: claimsEdit(`aud=`), want: token.ErrAudience},
		{name: "aud array without us", raw: claimsEdit(`aud=["coupons","points"]`), want: token.ErrAudience},
		{name: "aud number", raw: claimsEdit(`aud=7`), want: token.ErrClaims},
		{name: "aud array with a number", raw: claimsEdit(`aud=["order-processing",7]`), want: token.ErrClaims},
		{name: "aud array too long", raw: claimsEdit(`aud=` + many(17, "order-processing")), want: token.ErrTooLarge},
		{name: "iss unknown", raw: claimsEdit(`iss="evil"`), want: token.ErrSignature},
		{name: "iss missing", raw: claimsEdit(`iss=`), want: token.ErrSignature},
		{name: "iss as array", raw: claimsEdit(`iss=["coupons"]`), want: token.ErrSignature},
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
		{name: "access token typ JWT", raw: signedBy("identity", "identity", "JWT", nil, accessClaims("identity")), kind: "access", want: token.ErrType},
		{name: "access token typ JWT, no iss: judged after the signature", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "identity")
			return forge(tb, k, header(k, "JWT").String(), `{}`)
		}, kind: "access", want: token.ErrSignature},
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
	}, append(signatureFirstCases(), foreignCases()...)...)
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
	case "workload":
		_, err = token.Verify(ctx, v, token.Workload, raw)
	case "confirmation-allow-expired":
		_, err = token.VerifyAllowExpired(ctx, v, token.Confirmation, raw)
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
	names := map[string]bool{}
	for _, tc := range cases {
		if tc.want != nil {
			defects++
		}
		if names[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		names[tc.name] = true
	}
	if defects < 150 {
		t.Fatalf("only %d adversarial cases", defects)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := tc.raw(t, f)
			v := f.v
			if tc.opts != nil {
				v = f.verifier(t, tc.opts...)
			}
			err := verifyAs(context.Background(), v, tc.kind, raw)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, token.ErrInvalid) || token.Reason(err) == "" {
				t.Fatalf("err = %v: not a token defect with a reason", err)
			}
			// A refusal before the signature verified says nothing but
			// "signature": its sentinel and reason are the signature's.
			if tc.want == token.ErrSignature && (token.Sentinel(err) != token.ErrSignature || token.Reason(err) != "signature") {
				t.Fatalf("err = %v: sentinel %v, reason %q; want the signature's alone", err, token.Sentinel(err), token.Reason(err))
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

// signedBy signs claims under the header of named's key (its alg and kid),
// with by's key: by == named makes a genuine token, an attacker's key
// ("evil-ed", "evil-es") a forgery.
func signedBy(by, named, typ string, hdrEdits []string, claims members) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		return forge(tb, f.key(tb, by), header(f.key(tb, named), typ).with(hdrEdits...).String(), claims.String())
	}
}

// impostor forges a coupons confirmation with claim edits under the kid of
// coupons' real key, signed by the attacker's key.
func impostor(edits ...string) func(testing.TB, *fixture) string {
	return signedBy("evil-ed", "coupons", "confirmation+jwt", nil, confClaims("coupons").with(edits...))
}

// stranger forges a coupons confirmation with claim edits under the
// attacker's own kid.
func stranger(edits ...string) func(testing.TB, *fixture) string {
	return signedBy("evil-ed", "evil-ed", "confirmation+jwt", nil, confClaims("coupons").with(edits...))
}

// workload signs a workload token of OrderProcessing with claim edits.
func workload(edits ...string) func(testing.TB, *fixture) string {
	return signedBy("order-processing", "order-processing", "wl+jwt", nil, wlClaims().with(edits...))
}

// txn signs a transaction token of issuer with claim edits.
func txn(issuer string, edits ...string) func(testing.TB, *fixture) string {
	return signedBy(issuer, issuer, "txntoken+jwt", nil, txnClaims(issuer).with(edits...))
}

// at is epoch plus d seconds, as a NumericDate.
func at(d int64) string { return fmt.Sprint(epoch.Unix() + d) }

// signatureFirstCases are the cases of issue 14: claims are judged only
// once the signature verified, so a forgery learns nothing of the policy;
// exact time boundaries; workload tokens bound to their call; and more of
// every class.
func signatureFirstCases() []adversarialCase {
	strict := []token.Option{token.WithLeeway(0)}
	justBefore := []token.Option{token.WithLeeway(0), token.WithClock(func() time.Time { return epoch.Add(-time.Nanosecond) })}
	many := func(n int, s string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`"`+s+`",`, n), ",") + "]"
	}
	object := func(n int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":"v"`, i)
		}
		return b.String() + "}"
	}
	return []adversarialCase{
		// Forged signatures with every claim defect: the refusal is the
		// signature, whatever else is wrong, so that a forger learns
		// nothing of the policy, a client is not told to retry a forgery,
		// and metrics do not count forgeries as expiries.
		{name: "forged: attacker key under the issuer's kid", raw: impostor(), want: token.ErrSignature},
		{name: "forged: expired", raw: impostor("iat="+at(-200), "exp="+at(-100)), want: token.ErrSignature},
		{name: "forged: expired an hour ago", raw: impostor("iat="+at(-3700), "exp="+at(-3600)), want: token.ErrSignature},
		{name: "forged: nbf in the future", raw: impostor("nbf=" + at(60)), want: token.ErrSignature},
		{name: "forged: iat in the future", raw: impostor("iat="+at(60), "exp="+at(120)), want: token.ErrSignature},
		{name: "forged: lifetime beyond the kind", raw: impostor("exp=" + at(3600)), want: token.ErrSignature},
		{name: "forged: exp before iat", raw: impostor("exp=" + at(-1)), want: token.ErrSignature},
		{name: "forged: foreign audience", raw: impostor(`aud="payments"`), want: token.ErrSignature},
		{name: "forged: audience missing", raw: impostor(`aud=`), want: token.ErrSignature},
		{name: "forged: issuer unknown", raw: impostor(`iss="evil"`), want: token.ErrSignature},
		{name: "forged: issuer missing", raw: impostor(`iss=`), want: token.ErrSignature},
		{name: "forged: issuer an array", raw: impostor(`iss=["coupons"]`), want: token.ErrSignature},
		{name: "forged: sub missing", raw: impostor(`sub=`), want: token.ErrSignature},
		{name: "forged: jti missing", raw: impostor(`jti=`), want: token.ErrSignature},
		{name: "forged: capabilities missing", raw: impostor(`capabilities=`), want: token.ErrSignature},
		{name: "forged: capability of another namespace", raw: impostor(`capabilities=["points:redeem"]`), want: token.ErrSignature},
		{name: "forged: settlement currency invalid", raw: impostor(`settlement={"amount_minor":1,"currency":"eur"}`), want: token.ErrSignature},
		{name: "forged: settlement amount fractional", raw: impostor(`settlement={"amount_minor":1.5,"currency":"EUR"}`), want: token.ErrSignature},
		{name: "forged: exp a string", raw: impostor(`exp="` + at(60) + `"`), want: token.ErrSignature},
		{name: "forged: exp missing", raw: impostor(`exp=`), want: token.ErrSignature},
		{name: "forged: iat missing", raw: impostor(`iat=`), want: token.ErrSignature},
		{name: "forged: aud a number", raw: impostor(`aud=7`), want: token.ErrSignature},
		{name: "forged: aud array too long", raw: impostor(`aud=` + many(17, "order-processing")), want: token.ErrSignature},
		{name: "forged: capabilities array too long", raw: impostor(`capabilities=` + many(40, "coupons:redeem")), want: token.ErrSignature},
		{name: "forged: kind the issuer may not issue", raw: signedBy("evil-ed", "coupons", "checkout+jwt", nil,
			confClaims("coupons").with(`aud="coupons"`, `currency="EUR"`, `amount_minor=1`)), kind: "checkout", want: token.ErrSignature},
		{name: "forged: attacker's own kid", raw: stranger(), want: token.ErrSignature},
		{name: "forged: attacker's own kid, expired", raw: stranger("iat="+at(-200), "exp="+at(-100)), want: token.ErrSignature},
		{name: "forged: attacker's own kid, unknown issuer, expired", raw: stranger(`iss="evil"`, "iat="+at(-200), "exp="+at(-100)), want: token.ErrSignature},
		{name: "forged: attacker's own kid, foreign audience", raw: stranger(`aud="coupons"`), want: token.ErrSignature},
		{name: "forged: ES256 attacker key for an EdDSA-only issuer, expired", raw: signedBy("evil-es", "evil-es", "confirmation+jwt", nil,
			confClaims("coupons").with("iat="+at(-200), "exp="+at(-100))), want: token.ErrSignature},
		{name: "forged: ES256 attacker key under payments' kid, expired", raw: signedBy("evil-es", "payments", "confirmation+jwt", nil,
			confClaims("payments").with("iat="+at(-200), "exp="+at(-100))), want: token.ErrSignature},
		{name: "forged: another trusted issuer's key claims coupons, expired", raw: signedBy("points", "points", "confirmation+jwt", nil,
			confClaims("coupons").with("iat="+at(-200), "exp="+at(-100))), want: token.ErrSignature},
		{name: "forged: transaction token, expired", raw: signedBy("evil-ed", "gateway", "txntoken+jwt", nil,
			txnClaims("gateway").with("iat="+at(-200), "exp="+at(-100))), kind: "transaction", want: token.ErrSignature},
		{name: "forged: transaction token, foreign trust domain", raw: signedBy("evil-ed", "gateway", "txntoken+jwt", nil,
			txnClaims("gateway").with(`aud="elsewhere"`)), kind: "transaction", want: token.ErrSignature},
		{name: "forged: workload token for another callee", raw: signedBy("evil-ed", "order-processing", "wl+jwt", nil,
			wlClaims().with(`aud="points"`)), kind: "workload", want: token.ErrSignature},
		{name: "forged: workload token without its call", raw: signedBy("evil-ed", "order-processing", "wl+jwt", nil,
			wlClaims().with(`proc=`, `req=`)), kind: "workload", want: token.ErrSignature},
		{name: "forged: access token, expired", raw: signedBy("evil-ed", "identity", "at+jwt", nil,
			members{{"iss", `"identity"`}, {"sub", `"u"`}, {"aud", `"tokenrelay-api"`}, {"iat", at(-1000)}, {"exp", at(-100)}, {"jti", `"j"`}, {"client_id", `"web"`}}),
			kind: "access", want: token.ErrSignature},
		{name: "genuine key, unknown issuer", raw: claimsEdit(`iss="coupons-eu"`), want: token.ErrSignature},
		{name: "genuine key, issuer as a number", raw: claimsEdit(`iss=1`), want: token.ErrSignature},

		// Judged after the signature: a genuine token learns which check
		// failed.
		{name: "genuine ES256 from an issuer trusted for EdDSA only", raw: txn("ledger"), kind: "transaction", want: token.ErrAlgorithm},
		{name: "genuine confirmation signed by a transaction issuer", raw: signedBy("gateway", "gateway", "confirmation+jwt", nil, confClaims("gateway")), want: token.ErrType},
		{name: "genuine transaction typ from coupons", raw: signedBy("coupons", "coupons", "txntoken+jwt", nil, txnClaims("coupons")), kind: "transaction", want: token.ErrType},
		{name: "genuine, expired an hour ago", raw: claimsEdit("iat="+at(-3700), "exp="+at(-3600)), want: token.ErrExpired},
		{name: "genuine, nbf and aud both wrong: times first", raw: claimsEdit("nbf="+at(60), `aud="x"`), want: token.ErrNotYetValid},
		{name: "genuine, exp a string and expired: types first", raw: claimsEdit(`exp="1"`, "iat="+at(-200)), want: token.ErrClaims},

		// exp, nbf and iat boundaries (RFC 7519 4.1.4: expired on or after
		// exp; 4.1.5: valid on or after nbf), leeway 10s unless strict.
		{name: "exp exactly leeway ago", raw: claimsEdit("iat="+at(-100), "exp="+at(-10)), want: token.ErrExpired},
		{name: "exp leeway minus one second ago", raw: claimsEdit("iat="+at(-100), "exp="+at(-9)), want: nil},
		{name: "strict: exp now", raw: claimsEdit("iat="+at(-100), "exp="+at(0)), opts: strict, want: token.ErrExpired},
		{name: "strict: exp one second ahead", raw: claimsEdit("iat="+at(-100), "exp="+at(1)), opts: strict, want: nil},
		{name: "strict: exp one nanosecond ahead", raw: claimsEdit("iat="+at(-100), "exp="+at(0)), opts: justBefore, want: nil},
		{name: "strict: exp one second ago", raw: claimsEdit("iat="+at(-100), "exp="+at(-1)), opts: strict, want: token.ErrExpired},
		{name: "strict: nbf now", raw: claimsEdit("nbf=" + at(0)), opts: strict, want: nil},
		{name: "strict: nbf one second ahead", raw: claimsEdit("nbf=" + at(1)), opts: strict, want: token.ErrNotYetValid},
		{name: "strict: nbf one nanosecond ahead", raw: claimsEdit("nbf="+at(0), "iat="+at(-1)), opts: justBefore, want: token.ErrNotYetValid},
		{name: "strict: iat one second ahead", raw: claimsEdit("iat="+at(1), "exp="+at(100)), opts: strict, want: token.ErrNotYetValid},
		{name: "strict: exp now, allowed for compensation only", raw: claimsEdit("iat="+at(-100), "exp="+at(0)), kind: "confirmation-allow-expired", opts: strict, want: nil},
		{name: "nbf exactly leeway ahead", raw: claimsEdit("nbf=" + at(10)), want: nil},
		{name: "nbf leeway plus one second ahead", raw: claimsEdit("nbf=" + at(11)), want: token.ErrNotYetValid},
		{name: "iat exactly leeway ahead", raw: claimsEdit("iat="+at(10), "exp="+at(100)), want: nil},
		{name: "iat leeway plus one second ahead", raw: claimsEdit("iat="+at(11), "exp="+at(100)), want: token.ErrNotYetValid},
		{name: "lifetime exactly the kind's maximum", raw: claimsEdit("exp=" + at(300)), want: nil},
		{name: "exp zero", raw: claimsEdit("exp=0"), want: token.ErrExpired},
		{name: "exp negative zero", raw: claimsEdit("exp=-0"), want: token.ErrExpired},
		{name: "exp after year 9999", raw: claimsEdit("exp=253402300800"), want: token.ErrClaims},
		{name: "exp with an exponent", raw: claimsEdit("exp=1.8000001e9"), want: nil},
		{name: "exp with an exponent, lifetime zero", raw: claimsEdit("exp=1.8e9"), want: token.ErrLifetime},
		{name: "exp 1e400", raw: claimsEdit("exp=1e400"), want: token.ErrClaims},
		{name: "exp fraction rounded down: exactly leeway ago", raw: claimsEdit("iat="+at(-100), "exp="+at(-10)+".9"), want: token.ErrExpired},
		{name: "nbf fraction rounded up: beyond the leeway", raw: claimsEdit("nbf=" + at(10) + ".1"), want: token.ErrNotYetValid},
		{name: "exp an absurdly long number", raw: claimsEdit("exp=" + at(60) + "." + strings.Repeat("0", 40)), want: token.ErrClaims},
		{name: "exp a boolean", raw: claimsEdit("exp=true"), want: token.ErrClaims},
		{name: "exp with a plus sign", raw: claimsEdit("exp=+" + at(60)), want: token.ErrMalformed},
		{name: "exp an object", raw: claimsEdit(`exp={"$date":1}`), want: token.ErrClaims},
		{name: "nbf a string", raw: claimsEdit(`nbf="` + at(0) + `"`), want: token.ErrClaims},
		{name: "nbf fractional", raw: claimsEdit("nbf=" + at(0) + ".5"), want: nil},
		{name: "nbf negative", raw: claimsEdit("nbf=-1"), want: token.ErrClaims},
		{name: "iat in scientific notation", raw: claimsEdit("iat=1.8e9"), want: nil},
		{name: "iat negative fraction", raw: claimsEdit("iat=-0.5"), want: token.ErrClaims},
		{name: "iat null", raw: claimsEdit("iat=null"), want: token.ErrClaims},

		// Audience arrays (RFC 7519 4.1.3).
		{name: "aud empty array", raw: claimsEdit(`aud=[]`), want: token.ErrAudience},
		{name: "aud array with an empty value", raw: claimsEdit(`aud=["","order-processing"]`), want: token.ErrClaims},
		{name: "aud array of the maximum 16 containing us", raw: claimsEdit(`aud=["order-processing",` + strings.TrimPrefix(many(15, "x"), "[")), want: nil},
		{name: "aud nested array", raw: claimsEdit(`aud=[["order-processing"]]`), want: token.ErrClaims},
		{name: "aud case variant", raw: claimsEdit(`aud="Order-Processing"`), want: token.ErrAudience},
		{name: "aud with a trailing space", raw: claimsEdit(`aud="order-processing "`), want: token.ErrAudience},
		{name: "aud null", raw: claimsEdit(`aud=null`), want: token.ErrClaims},
		{name: "aud escaped, same value", raw: claimsEdit(`aud="order\u002dprocessing"`), want: nil},
		{name: "aud prefix of ours", raw: claimsEdit(`aud="order"`), want: token.ErrAudience},

		// Duplicate names, as written and after unescaping (RFC 7519 4;
		// RFC 8259 4).
		{name: "duplicate aud", raw: claimsEdit(`+aud="points"`), want: token.ErrDuplicateName},
		{name: "duplicate jti", raw: claimsEdit(`+jti="jti-2"`), want: token.ErrDuplicateName},
		{name: "duplicate nbf", raw: claimsEdit("nbf="+at(0), "+nbf="+at(0)), want: token.ErrDuplicateName},
		{name: "duplicate iat via escape", raw: claimsEdit(`+\u0069at=` + at(0)), want: token.ErrDuplicateName},
		{name: "case-variant NBF", raw: claimsEdit("+NBF=" + at(0)), want: token.ErrDuplicateName},
		{name: "duplicate capabilities", raw: claimsEdit(`+capabilities=["coupons:stack"]`), want: token.ErrDuplicateName},
		{name: "duplicate settlement currency via escape", raw: claimsEdit(`settlement={"amount_minor":1,"currency":"EUR","curr\u0065ncy":"USD"}`), want: token.ErrDuplicateName},
		{name: "duplicate typ header", raw: headerEdit(`+typ="txntoken+jwt"`), want: token.ErrDuplicateName},
		{name: "duplicate tctx member", raw: txn("gateway", `tctx={"tenant":"acme","tenant":"evil"}`), kind: "transaction", want: token.ErrDuplicateName},
		{name: "forged: duplicate exp", raw: impostor("+exp=" + at(9999)), want: token.ErrDuplicateName},

		// Header parameters (RFC 7515 4.1; RFC 8725 3.10).
		{name: "x5t header", raw: headerEdit(`x5t="abc"`), want: token.ErrHeader},
		{name: "x5t#S256 header", raw: headerEdit(`x5t#S256="abc"`), want: token.ErrHeader},
		{name: "enc header (JWE)", raw: headerEdit(`enc="A256GCM"`), want: token.ErrHeader},
		{name: "empty header parameter name", raw: headerEdit(`="x"`), want: token.ErrHeader},
		{name: "kid a number", raw: headerEdit(`kid=7`), want: token.ErrHeader},
		{name: "kid an object", raw: headerEdit(`kid={"kid":"x"}`), want: token.ErrHeader},
		{name: "typ null", raw: headerEdit(`typ=null`), want: token.ErrHeader},
		{name: "b64 true", raw: headerEdit(`b64=true`), want: token.ErrHeader},
		{name: "jku and jwk together", raw: headerEdit(`jku="https://evil.example/"`, `jwk={}`), want: token.ErrHeader},
		{name: "crit naming b64", raw: headerEdit(`crit=["b64"]`, `b64=false`), want: token.ErrHeader},

		// kid tricks: a key is found only by exact kid in the source of the
		// token's own issuer.
		{name: "kid path traversal", raw: headerEdit(`kid="../../order-processing/key"`), want: token.ErrSignature},
		{name: "kid with a NUL", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").with(`kid="`+k.KID()+`\u0000"`).String(), confClaims("coupons").String())
		}, want: token.ErrSignature},
		{name: "kid with a trailing space", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").with(`kid="`+k.KID()+` "`).String(), confClaims("coupons").String())
		}, want: token.ErrSignature},
		{name: "kid of 256 bytes", raw: headerEdit(`kid="` + strings.Repeat("k", 256) + `"`), want: token.ErrSignature},
		{name: "kid of 257 bytes", raw: headerEdit(`kid="` + strings.Repeat("k", 257) + `"`), want: token.ErrKeyID},
		{name: "kid of the issuer's key, iss another issuer", raw: signedBy("coupons", "coupons", "confirmation+jwt", nil, confClaims("points")), want: token.ErrSignature},
		{name: "kid SQL injection", raw: headerEdit(`kid="' OR 1=1--"`), want: token.ErrSignature},

		// typ confusion between the kinds (RFC 8725 3.11).
		{name: "workload token presented as confirmation", raw: workload(), want: token.ErrType},
		{name: "confirmation presented as workload token", raw: claimsEdit(), kind: "workload", want: token.ErrType},
		{name: "checkout presented as transaction token", raw: signedBy("order-processing", "order-processing", "checkout+jwt", nil,
			confClaims("order-processing").with(`aud="coupons"`, `currency="EUR"`, `amount_minor=1`)), kind: "transaction", want: token.ErrType},
		{name: "access token presented as workload token", raw: signedBy("identity", "identity", "at+jwt", nil, wlClaims()), kind: "workload", want: token.ErrType},
		{name: "transaction token presented as access token", raw: txn("gateway"), kind: "access", want: token.ErrType},
		{name: "application/ prefix of another kind", raw: headerEdit(`typ="application/txntoken+jwt"`), want: token.ErrType},
		{name: "typ with a trailing space", raw: headerEdit(`typ="confirmation+jwt "`), want: token.ErrType},
		{name: "typ JWT for a workload token", raw: signedBy("order-processing", "order-processing", "JWT", nil, wlClaims()), kind: "workload", want: token.ErrType},
		{name: "typ with a doubled prefix", raw: headerEdit(`typ="application/application/confirmation+jwt"`), want: token.ErrType},
		{name: "typ an array of kinds", raw: headerEdit(`typ=["confirmation+jwt"]`), want: token.ErrHeader},

		// Algorithms.
		{name: "alg ES256K", raw: headerEdit(`alg="ES256K"`), want: token.ErrAlgorithm},
		{name: "alg HS512", raw: headerEdit(`alg="HS512"`), want: token.ErrAlgorithm},
		{name: "alg ES384", raw: headerEdit(`alg="ES384"`), want: token.ErrAlgorithm},
		{name: "alg Ed448", raw: headerEdit(`alg="Ed448"`), want: token.ErrAlgorithm},
		{name: "alg with a trailing space", raw: headerEdit(`alg="EdDSA "`), want: token.ErrAlgorithm},
		{name: "alg empty", raw: headerEdit(`alg=""`), want: token.ErrAlgorithm},
		{name: "alg missing", raw: headerEdit(`alg=`), want: token.ErrAlgorithm},
		{name: "EdDSA header under payments' kid, signed by payments' ES256 key", raw: signedBy("payments", "payments", "confirmation+jwt", []string{`alg="EdDSA"`}, confClaims("payments")), want: token.ErrSignature},

		// Size.
		{name: "one byte over the size limit", raw: func(testing.TB, *fixture) string { return strings.Repeat("A", token.DefaultMaxTokenSize+1) }, want: token.ErrTooLarge},
		{name: "oversize signature segment", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw + strings.Repeat("A", 600) }), want: token.ErrTooLarge},
		{name: "EdDSA signature of RSA length", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw + strings.Repeat("A", 256) }), want: token.ErrSignature},
		{name: "more than 64 claims", raw: func(tb testing.TB, f *fixture) string {
			c := confClaims("coupons")
			for i := range 60 {
				c = c.with(fmt.Sprintf("x%d=1", i))
			}
			return signedBy("coupons", "coupons", "confirmation+jwt", nil, c)(tb, f)
		}, want: token.ErrTooLarge},
		{name: "tctx of 33 members", raw: txn("gateway", "tctx="+object(33)), kind: "transaction", want: token.ErrTooLarge},
		{name: "constraints of 33 members", raw: claimsEdit("constraints=" + object(33)), want: token.ErrTooLarge},
		{name: "oversize header, forged", raw: signedBy("evil-ed", "coupons", "confirmation+jwt", []string{`pad="` + strings.Repeat("p", 1100) + `"`}, confClaims("coupons")), want: token.ErrTooLarge},

		// Non-canonical base64 and structure.
		{name: "header non-canonical trailing bits", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return nonCanonical(p[0]) + "." + p[1] + "." + p[2]
		}), want: token.ErrMalformed},
		{name: "claims non-canonical trailing bits", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + "." + nonCanonical(p[1]) + "." + p[2]
		}), want: token.ErrMalformed},
		{name: "claims padded", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + "." + p[1] + "=." + p[2]
		}), want: token.ErrMalformed},
		{name: "empty header segment", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return "." + p[1] + "." + p[2]
		}), want: token.ErrMalformed},
		{name: "empty claims segment", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			return p[0] + ".." + p[2]
		}), want: token.ErrMalformed},
		{name: "claims segment of impossible length", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string {
			p := parts(raw)
			c := p[1] + "A"
			for len(c)%4 != 1 { // no base64 has a length of 1 mod 4
				c += "A"
			}
			return p[0] + "." + c + "." + p[2]
		}), want: token.ErrMalformed},

		// Trailing data.
		{name: "trailing dot", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw + "." }), want: token.ErrMalformed},
		{name: "trailing NUL", raw: mutate(func(_ testing.TB, _ *fixture, raw string) string { return raw + "\x00" }), want: token.ErrMalformed},
		{name: "trailing data after the header object", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").String()+"x", confClaims("coupons").String())
		}, want: token.ErrMalformed},
		{name: "two header objects", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").String()+`{"alg":"none"}`, confClaims("coupons").String())
		}, want: token.ErrMalformed},
		{name: "trailing comma in the claims", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			c := confClaims("coupons").String()
			return forge(tb, k, header(k, "confirmation+jwt").String(), c[:len(c)-1]+",}")
		}, want: token.ErrMalformed},
		{name: "byte order mark before the claims", raw: func(tb testing.TB, f *fixture) string {
			k := f.key(tb, "coupons")
			return forge(tb, k, header(k, "confirmation+jwt").String(), "\ufeff"+confClaims("coupons").String())
		}, want: token.ErrMalformed},
		{name: "forged, trailing data after the claims", raw: func(tb testing.TB, f *fixture) string {
			k, named := f.key(tb, "evil-ed"), f.key(tb, "coupons")
			return forge(tb, k, header(named, "confirmation+jwt").String(), confClaims("coupons").String()+"[]")
		}, want: token.ErrMalformed},

		// Workload tokens bound to their call (proc, req).
		{name: "workload valid", raw: workload(), kind: "workload", want: nil},
		{name: "workload without proc", raw: workload(`proc=`), kind: "workload", want: token.ErrClaims},
		{name: "workload without req", raw: workload(`req=`), kind: "workload", want: token.ErrClaims},
		{name: "workload with an empty proc", raw: workload(`proc=""`), kind: "workload", want: token.ErrClaims},
		{name: "workload proc a number", raw: workload(`proc=1`), kind: "workload", want: token.ErrClaims},
		{name: "workload req an array", raw: workload(`req=["` + wlDigest + `"]`), kind: "workload", want: token.ErrClaims},
		{name: "workload duplicate proc", raw: workload(`+proc="/tokenrelay.capability.v1.CapabilityService/Compensate"`), kind: "workload", want: token.ErrDuplicateName},
		{name: "workload case-variant PROC", raw: workload(`+PROC="/tokenrelay.capability.v1.CapabilityService/Compensate"`), kind: "workload", want: token.ErrDuplicateName},
		{name: "workload req via escape next to req", raw: workload(`+r\u0065q="x"`), kind: "workload", want: token.ErrDuplicateName},
		{name: "workload for another callee", raw: workload(`aud="points"`), kind: "workload", want: token.ErrAudience},
		{name: "workload lifetime beyond 2 minutes", raw: workload("exp=" + at(121)), kind: "workload", want: token.ErrLifetime},
		{name: "workload without jti", raw: workload(`jti=`), kind: "workload", want: token.ErrClaims},
		{name: "workload from an issuer not trusted for it", raw: signedBy("coupons", "coupons", "wl+jwt", nil,
			wlClaims().with(`iss="coupons"`, `sub="coupons"`)), kind: "workload", want: token.ErrType},
	}
}

// nonCanonical sets a padding bit of a base64url segment whose length
// leaves some (not a multiple of 4), else appends a character that does.
func nonCanonical(seg string) string {
	if len(seg)%4 == 0 {
		seg += "AB" // 12 bits for one byte: the last 4 must be zero
		return seg
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}
