package token_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Foreign OpenID Connect providers of the fixture:
//
//   - opIssuer, an RFC 9068 provider (as npm oidc-provider): RS256, PS256
//     and ES256, typ at+jwt, scopes in "scope", lifetime up to 24 hours
//     (Auth0's default), leeway 60 s;
//   - kcIssuer, a Keycloak realm: RS256, typ "JWT" accepted, roles in
//     realm_access.roles, the client in azp;
//   - oktaIssuer, an Okta authorization server: RS256, typ JWT or none,
//     scopes in the scp array, the client in cid, the user in uid.
const (
	opIssuer   = "https://op.example"
	kcIssuer   = "https://kc.example/realms/shop"
	oktaIssuer = "https://okta.example/oauth2/default"
)

// foreignKeys are the providers' keys: RSA keys take a while to generate,
// so every fixture shares them.
type foreignKeys struct {
	rsa, evilRSA *rsa.PrivateKey
	es           *keys.PrivateKey
	op, kc       keySet
}

// keySet is a static keys.Source.
type keySet map[string]*keys.PublicKey

func (s keySet) Key(_ context.Context, kid string) (*keys.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, keys.ErrKeyNotFound
}

var (
	foreignOnce sync.Once
	foreign     *foreignKeys
	foreignErr  error
)

func sharedForeignKeys(tb testing.TB) *foreignKeys {
	tb.Helper()
	foreignOnce.Do(func() {
		fk := &foreignKeys{}
		if fk.rsa, foreignErr = rsa.GenerateKey(rand.Reader, 2048); foreignErr != nil {
			return
		}
		if fk.evilRSA, foreignErr = rsa.GenerateKey(rand.Reader, 2048); foreignErr != nil {
			return
		}
		if fk.es, foreignErr = keys.GenerateKey(keys.ES256); foreignErr != nil {
			return
		}
		rs, err := keys.NewRSAPublicKey("rs-1", &fk.rsa.PublicKey, keys.RS256)
		if err != nil {
			foreignErr = err
			return
		}
		ps, err := keys.NewRSAPublicKey("ps-1", &fk.rsa.PublicKey, keys.PS256)
		if err != nil {
			foreignErr = err
			return
		}
		fk.op = keySet{"rs-1": rs, "ps-1": ps, fk.es.KID(): fk.es.Public()}
		fk.kc = keySet{"rs-1": rs}
		foreign = fk
	})
	if foreignErr != nil {
		tb.Fatal(foreignErr)
	}
	return foreign
}

func (fk *foreignKeys) trust() []token.Option {
	return []token.Option{
		token.Trust(opIssuer, fk.op, token.Accept(token.Access, "tokenrelay-api"),
			token.Algorithms(keys.RS256, keys.PS256, keys.ES256),
			token.Profile(token.AccessProfile{MaxLifetime: 24 * time.Hour, Leeway: time.Minute})),
		token.Trust(kcIssuer, fk.kc, token.Accept(token.Access, "shop-api"), token.Algorithms(keys.RS256),
			token.Profile(token.AccessProfile{Types: []string{"at+jwt", "JWT"}, ScopeClaim: []string{"realm_access", "roles"}, ClientIDClaim: "azp"})),
		token.Trust(oktaIssuer, fk.kc, token.Accept(token.Access, "api://shop"), token.Algorithms(keys.RS256),
			token.Profile(token.AccessProfile{Types: []string{"JWT", ""}, ScopeClaim: []string{"scp"}, ClientIDClaim: "cid", SubjectClaim: "uid"})),
	}
}

// rsaHeader is the header of an RSA-signed token.
func rsaHeader(alg, kid, typ string) members {
	return members{{"alg", `"` + alg + `"`}, {"kid", `"` + kid + `"`}, {"typ", `"` + typ + `"`}}
}

// signRSA signs hdr.claims with priv: PSS for a header alg PS256, else
// PKCS #1 v1.5.
func signRSA(tb testing.TB, priv *rsa.PrivateKey, pss bool, hdr, claims string) string {
	tb.Helper()
	input := b64(hdr) + "." + b64(claims)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	if pss {
		sig, err = rsa.SignPSS(rand.Reader, priv, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	}
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// accessClaims are the claims of a valid RFC 9068 access token of issuer
// for tokenrelay-api.
func accessClaims(issuer string) members {
	return members{
		{"iss", `"` + issuer + `"`}, {"sub", `"user-1"`}, {"aud", `"tokenrelay-api"`},
		{"iat", at(0)}, {"exp", at(600)}, {"jti", `"at-1"`}, {"client_id", `"web"`}, {"scope", `"shop"`},
	}
}

// kcClaims are the claims of a Keycloak access token.
func kcClaims() members {
	return members{
		{"iss", `"` + kcIssuer + `"`}, {"sub", `"f1b7c2d4-0000-4000-8000-000000000001"`}, {"aud", `["shop-api","account"]`},
		{"iat", at(0)}, {"exp", at(300)}, {"azp", `"shop-web"`}, {"typ", `"Bearer"`},
		{"realm_access", `{"roles":["shop","offline_access"]}`}, {"scope", `"openid profile"`},
	}
}

// opRSA is an access token of opIssuer signed with RS256 (PS256 if alg
// says so) with header and claim edits.
func opRSA(alg string, hdrEdits []string, claimEdits ...string) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		kid := "rs-1"
		if alg == keys.PS256 {
			kid = "ps-1"
		}
		return signRSA(tb, f.foreign.rsa, alg == keys.PS256, rsaHeader(alg, kid, "at+jwt").with(hdrEdits...).String(),
			accessClaims(opIssuer).with(claimEdits...).String())
	}
}

func opEdit(claimEdits ...string) func(testing.TB, *fixture) string {
	return opRSA(keys.RS256, nil, claimEdits...)
}

func opHeader(hdrEdits ...string) func(testing.TB, *fixture) string {
	return opRSA(keys.RS256, hdrEdits)
}

func kc(hdrEdits []string, claimEdits ...string) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		return signRSA(tb, f.foreign.rsa, false, rsaHeader(keys.RS256, "rs-1", "JWT").with(hdrEdits...).String(), kcClaims().with(claimEdits...).String())
	}
}

// okta is an access token of oktaIssuer with header edits.
func okta(hdrEdits ...string) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		return signRSA(tb, f.foreign.rsa, false, rsaHeader(keys.RS256, "rs-1", "JWT").with(hdrEdits...).String(), oktaClaims().String())
	}
}

func oktaClaims() members {
	return members{
		{"iss", `"` + oktaIssuer + `"`}, {"sub", `"ann@example.com"`}, {"uid", `"00u1"`}, {"aud", `"api://shop"`},
		{"iat", at(0)}, {"exp", at(600)}, {"cid", `"0oa1"`}, {"scp", `["shop","admin"]`}, {"ver", "1"},
	}
}

// identityAT is an access token of tokenrelay's own identity issuer, with
// header and claim edits.
func identityAT(hdrEdits []string, claimEdits ...string) func(testing.TB, *fixture) string {
	return signedBy("identity", "identity", "at+jwt", hdrEdits, accessClaims("identity").with(claimEdits...))
}

// foreignCases are the access tokens of foreign providers (issue 16): what
// real providers do is accepted from an issuer with a Profile, and what
// no token may do is refused from everyone; tokenrelay's own identity
// issuer keeps the strict rules.
func foreignCases() []adversarialCase {
	a := func(c adversarialCase) adversarialCase { c.kind = "access"; return c }
	return []adversarialCase{
		// What real providers do, accepted from a foreign issuer.
		a(adversarialCase{name: "foreign: RS256 at+jwt (RFC 9068 2.1)", raw: opEdit(), want: nil}),
		a(adversarialCase{name: "foreign: PS256", raw: opRSA(keys.PS256, nil), want: nil}),
		a(adversarialCase{name: "foreign: ES256", raw: func(tb testing.TB, f *fixture) string {
			return forge(tb, f.foreign.es, header(f.foreign.es, "at+jwt").String(), accessClaims(opIssuer).String())
		}, want: nil}),
		a(adversarialCase{name: "foreign: typ AT+JWT", raw: opHeader(`typ="AT+JWT"`), want: nil}),
		a(adversarialCase{name: "foreign: typ Application/At+Jwt", raw: opHeader(`typ="Application/At+Jwt"`), want: nil}),
		a(adversarialCase{name: "foreign: x5t header ignored (Entra ID)", raw: opHeader(`x5t="nOo3ZDrODXEK1jKWhXslHR_KXEg"`), want: nil}),
		a(adversarialCase{name: "foreign: private header parameters ignored (RFC 7515 4)", raw: opHeader(`x-tenant={"id":[1,2]}`, `ver="2.0"`), want: nil}),
		a(adversarialCase{name: "foreign: case-variant EXP is an unknown claim", raw: opEdit(`+EXP=1`), want: nil}),
		a(adversarialCase{name: "foreign: exp 1.8000006e9", raw: opEdit(`exp=1.8000006e9`), want: nil}),
		a(adversarialCase{name: "foreign: exp with a fraction", raw: opEdit(`exp=`+at(600)+`.5`, `iat=`+at(0)+`.25`), want: nil}),
		a(adversarialCase{name: "foreign: 24 h lifetime (Auth0)", raw: opEdit(`exp=` + at(86400)), want: nil}),
		a(adversarialCase{name: "foreign: no jti", raw: opEdit(`jti=`), want: nil}),
		a(adversarialCase{name: "foreign: client credentials, no sub", raw: opEdit(`sub=`), want: nil}),
		a(adversarialCase{name: "foreign: expired within its 60 s leeway", raw: opEdit(`exp=`+at(-59), `iat=`+at(-600)), want: nil}),
		a(adversarialCase{name: "foreign: Keycloak typ JWT, roles nested", raw: kc(nil), want: nil}),
		a(adversarialCase{name: "foreign: Keycloak roles a string", raw: kc(nil, `realm_access={"roles":"shop"}`), want: nil}),
		a(adversarialCase{name: "foreign: Keycloak without realm_access", raw: kc(nil, `realm_access=`), want: nil}),

		// What no token may do, refused from foreign issuers too.
		a(adversarialCase{name: "foreign: jku header", raw: opHeader(`jku="https://evil.example/jwks"`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: x5u header", raw: opHeader(`x5u="https://evil.example/c.pem"`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: embedded jwk", raw: opHeader(`jwk={"kty":"RSA","n":"AQAB","e":"AQAB"}`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: x5c header", raw: opHeader(`x5c=["MIIB"]`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: crit naming an unknown parameter", raw: opHeader(`crit=["exp"]`, `exp=1`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: crit empty", raw: opHeader(`crit=[]`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: b64 false", raw: opHeader(`b64=false`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: cty JWT (nested)", raw: opHeader(`cty="JWT"`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: JKU case variant", raw: opHeader(`JKU="https://evil.example/jwks"`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: KID case variant next to kid", raw: opHeader(`+KID="rs-1"`), want: token.ErrDuplicateName}),
		a(adversarialCase{name: "foreign: unknown header repeated", raw: opHeader(`x5t="a"`, `+x5t="b"`), want: token.ErrDuplicateName}),
		a(adversarialCase{name: "foreign: empty header parameter name", raw: opHeader(`="x"`), want: token.ErrHeader}),
		a(adversarialCase{name: "foreign: alg none", raw: opHeader(`alg="none"`), want: token.ErrAlgorithm}),
		a(adversarialCase{name: "foreign: alg HS256", raw: opHeader(`alg="HS256"`), want: token.ErrAlgorithm}),
		a(adversarialCase{name: "foreign: alg RS384", raw: opHeader(`alg="RS384"`), want: token.ErrAlgorithm}),
		a(adversarialCase{name: "foreign: alg rs256", raw: opHeader(`alg="rs256"`), want: token.ErrAlgorithm}),
		a(adversarialCase{name: "foreign: PS256 header under the RS256 kid", raw: func(tb testing.TB, f *fixture) string {
			return signRSA(tb, f.foreign.rsa, true, rsaHeader(keys.PS256, "rs-1", "at+jwt").String(), accessClaims(opIssuer).String())
		}, want: token.ErrSignature}),
		a(adversarialCase{name: "foreign: RS256 header under the ES256 kid", raw: func(tb testing.TB, f *fixture) string {
			return signRSA(tb, f.foreign.rsa, false, rsaHeader(keys.RS256, f.foreign.es.KID(), "at+jwt").String(), accessClaims(opIssuer).String())
		}, want: token.ErrSignature}),
		a(adversarialCase{name: "foreign: another RSA key under its kid", raw: func(tb testing.TB, f *fixture) string {
			return signRSA(tb, f.foreign.evilRSA, false, rsaHeader(keys.RS256, "rs-1", "at+jwt").String(), accessClaims(opIssuer).String())
		}, want: token.ErrSignature}),
		a(adversarialCase{name: "foreign: forged, with every claim wrong", raw: func(tb testing.TB, f *fixture) string {
			return signRSA(tb, f.foreign.evilRSA, false, rsaHeader(keys.RS256, "rs-1", "JWT").String(),
				accessClaims(opIssuer).with(`exp=`+at(-9999), `aud="x"`, `scope=7`).String())
		}, want: token.ErrSignature}),
		a(adversarialCase{name: "foreign: RSA signature one byte short", raw: func(tb testing.TB, f *fixture) string {
			p := parts(opEdit()(tb, f))
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig[1:])
		}, want: token.ErrSignature}),
		a(adversarialCase{name: "foreign: RSA signature of 64 bytes", raw: func(tb testing.TB, f *fixture) string {
			p := parts(opEdit()(tb, f))
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}, want: token.ErrSignature}),
		a(adversarialCase{name: "foreign: RSA signature beyond 4096 bits", raw: func(tb testing.TB, f *fixture) string {
			p := parts(opEdit()(tb, f))
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 513))
		}, want: token.ErrTooLarge}),
		a(adversarialCase{name: "foreign: typ JWT not opted in", raw: opHeader(`typ="JWT"`), want: token.ErrType}),
		a(adversarialCase{name: "foreign: typ missing", raw: opHeader(`typ=`), want: token.ErrType}),
		a(adversarialCase{name: "foreign: typ missing, accepted from Okta", raw: okta(`typ=`), want: nil}),
		a(adversarialCase{name: "foreign: typ empty, accepted from Okta", raw: okta(`typ=""`), want: nil}),
		a(adversarialCase{name: "foreign: typ at+jwt, not one of Okta's", raw: okta(`typ="at+jwt"`), want: token.ErrType}),
		a(adversarialCase{name: "foreign: typ of a transaction token", raw: opHeader(`typ="txntoken+jwt"`), want: token.ErrType}),
		a(adversarialCase{name: "foreign: lifetime 24 h and a second", raw: opEdit(`exp=` + at(86401)), want: token.ErrLifetime}),
		a(adversarialCase{name: "foreign: expired beyond its 60 s leeway", raw: opEdit(`exp=`+at(-60), `iat=`+at(-600)), want: token.ErrExpired}),
		a(adversarialCase{name: "foreign: another audience", raw: opEdit(`aud="account"`), want: token.ErrAudience}),
		a(adversarialCase{name: "foreign: duplicate exp", raw: opEdit(`+exp=` + at(9999)), want: token.ErrDuplicateName}),
		a(adversarialCase{name: "foreign: exp a string", raw: opEdit(`exp="` + at(600) + `"`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: neither sub nor client_id", raw: opEdit(`sub=`, `client_id=`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: scope an array of numbers", raw: opEdit(`scope=[1]`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: Keycloak roles with a number", raw: kc(nil, `realm_access={"roles":["shop",1]}`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: Keycloak realm_access a string", raw: kc(nil, `realm_access="admin"`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: Keycloak roles twice", raw: kc(nil, `realm_access={"roles":["shop"],"roles":["admin"]}`), want: token.ErrDuplicateName}),
		a(adversarialCase{name: "foreign: Keycloak role with a space", raw: kc(nil, `realm_access={"roles":["shop admin"]}`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: Keycloak azp a number", raw: kc(nil, `azp=1`), want: token.ErrClaims}),
		a(adversarialCase{name: "foreign: Keycloak PS256 not accepted from it", raw: func(tb testing.TB, f *fixture) string {
			return signRSA(tb, f.foreign.rsa, true, rsaHeader(keys.PS256, "ps-1", "JWT").String(), kcClaims().String())
		}, want: token.ErrSignature}),

		// tokenrelay's own identity issuer keeps its strict rules for
		// access tokens (RFC 8725 3.11-3.12).
		a(adversarialCase{name: "identity: valid", raw: identityAT(nil), want: nil}),
		a(adversarialCase{name: "identity: typ AT+JWT (case-insensitive)", raw: identityAT([]string{`typ="AT+JWT"`}), want: nil}),
		a(adversarialCase{name: "identity: exp with a fraction", raw: identityAT(nil, `exp=`+at(600)+`.5`), want: nil}),
		a(adversarialCase{name: "identity: x5t header", raw: identityAT([]string{`x5t="abc"`}), want: token.ErrHeader}),
		a(adversarialCase{name: "identity: private header", raw: identityAT([]string{`x-tenant="a"`}), want: token.ErrHeader}),
		a(adversarialCase{name: "identity: forged, x5t header", raw: signedBy("evil-ed", "identity", "at+jwt", []string{`x5t="abc"`}, accessClaims("identity")), want: token.ErrSignature}),
		a(adversarialCase{name: "identity: case-variant EXP", raw: identityAT(nil, `+EXP=1`), want: token.ErrDuplicateName}),
		a(adversarialCase{name: "identity: RS256 under its kid", raw: identityAT([]string{`alg="RS256"`}), want: token.ErrSignature}),
		a(adversarialCase{name: "identity: lifetime beyond 15 min", raw: identityAT(nil, `exp=`+at(901)), want: token.ErrLifetime}),
		a(adversarialCase{name: "identity: no jti", raw: identityAT(nil, `jti=`), want: token.ErrClaims}),
		a(adversarialCase{name: "identity: no client_id", raw: identityAT(nil, `client_id=`), want: token.ErrClaims}),
		a(adversarialCase{name: "identity: expired beyond 10 s", raw: identityAT(nil, `exp=`+at(-10), `iat=`+at(-600)), want: token.ErrExpired}),
	}
}

// TestForeignProfileClaims: a foreign token's subject, client and scopes
// are read from where its profile says.
func TestForeignProfileClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		name               string
		raw                func(testing.TB, *fixture) string
		sub, client, scope string
	}{
		{"RFC 9068", opEdit(`scope="shop  admin"`), "user-1", "web", "shop admin"},
		{"Okta: scp array, cid, uid", okta(), "00u1", "0oa1", "shop admin"},
		{"client credentials", opEdit(`sub=`, `scope=`), "", "web", ""},
		{"Keycloak", kc(nil), "f1b7c2d4-0000-4000-8000-000000000001", "shop-web", "shop offline_access"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := token.Verify(context.Background(), f.v, token.Access, tc.raw(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != tc.sub || c.ClientID != tc.client || c.Scope != tc.scope {
				t.Fatalf("sub %q client %q scope %q; want %q %q %q", c.Subject, c.ClientID, c.Scope, tc.sub, tc.client, tc.scope)
			}
		})
	}
}

// TestProfileConfig: a Profile is for foreign issuers of access tokens,
// and RSA for them only.
func TestProfileConfig(t *testing.T) {
	t.Parallel()
	fk := sharedForeignKeys(t)
	for name, opt := range map[string]token.Option{
		"RS256 without a Profile": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"), token.Algorithms(keys.RS256)),
		"Profile for confirmations": token.Trust(opIssuer, fk.op, token.Accept(token.Confirmation, "a"), token.Namespace("x"),
			token.Profile(token.AccessProfile{})),
		"Profile for access and transaction": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"), token.Accept(token.Transaction, "b"),
			token.Profile(token.AccessProfile{})),
		"typ of a transaction token": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"),
			token.Profile(token.AccessProfile{Types: []string{"application/TXNTOKEN+JWT"}})),
		"lifetime over 24 h": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"),
			token.Profile(token.AccessProfile{MaxLifetime: 25 * time.Hour})),
		"leeway over 5 min": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"),
			token.Profile(token.AccessProfile{Leeway: time.Hour})),
		"empty scope path element": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"),
			token.Profile(token.AccessProfile{ScopeClaim: []string{"realm_access", ""}})),
		"alg HS256": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"), token.Algorithms("HS256"),
			token.Profile(token.AccessProfile{})),
		"alg none": token.Trust(opIssuer, fk.op, token.Accept(token.Access, "a"), token.Algorithms("none"),
			token.Profile(token.AccessProfile{})),
	} {
		if _, err := token.NewVerifier(opt); !errors.Is(err, token.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// TestForeignLeewayCached: a cached foreign token is judged with its
// issuer's leeway, as when it was first verified.
func TestForeignLeewayCached(t *testing.T) {
	t.Parallel()
	now := epoch
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t)
	v := f.verifier(t, token.WithClock(clock), token.WithVerifiedCache(100))
	raw := opEdit(`exp=`+at(30), `iat=`+at(-600))(t, f)
	for i, step := range []time.Duration{0, 80 * time.Second} {
		mu.Lock()
		now = now.Add(step)
		mu.Unlock()
		if _, err := token.Verify(context.Background(), v, token.Access, raw); err != nil {
			t.Fatalf("verification %d, %v after exp: %v", i, now.Sub(epoch.Add(30*time.Second)), err)
		}
	}
	mu.Lock()
	now = now.Add(15 * time.Second)
	mu.Unlock()
	if _, err := token.Verify(context.Background(), v, token.Access, raw); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("past exp + 60 s: err = %v, want ErrExpired", err)
	}
}
