package token_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// epoch is the fixed "now" of every test.
var epoch = time.Unix(1_800_000_000, 0)

// fixture is a small tokenrelay: issuers with their own rings and one
// verifier trusting all of them, as OrderProcessing and the domains would.
type fixture struct {
	rings   map[string]*keys.Ring
	issuers map[string]*token.Issuer
	v       *token.Verifier
	// trust is every option of v, for verifier.
	trust []token.Option
	// evil holds an attacker's keys, unknown to every issuer: "evil-ed"
	// (EdDSA) and "evil-es" (ES256).
	evil map[string]*keys.PrivateKey
	// foreign are the keys of the foreign OpenID Connect providers
	// (foreignKeys).
	foreign *foreignKeys
}

func newFixture(tb testing.TB, opts ...token.Option) *fixture {
	tb.Helper()
	f := &fixture{rings: map[string]*keys.Ring{}, issuers: map[string]*token.Issuer{}, evil: map[string]*keys.PrivateKey{}, foreign: sharedForeignKeys(tb)}
	clock := func() time.Time { return epoch }
	for name, alg := range map[string]string{"evil-ed": keys.EdDSA, "evil-es": keys.ES256} {
		k, err := keys.GenerateKey(alg)
		if err != nil {
			tb.Fatal(err)
		}
		f.evil[name] = k
	}
	for _, name := range []string{"coupons", "points", "payments", "gateway", "identity", "order-processing", "ledger"} {
		alg := keys.EdDSA
		if name == "payments" || name == "ledger" {
			alg = keys.ES256
		}
		r, err := keys.NewRing(keys.WithAlgorithm(alg), keys.WithRingClock(clock))
		if err != nil {
			tb.Fatal(err)
		}
		f.rings[name] = r
		is, err := token.NewIssuer(name, r, token.WithClock(clock))
		if err != nil {
			tb.Fatal(err)
		}
		f.issuers[name] = is
	}
	all := append([]token.Option{
		token.WithClock(clock),
		token.WithLeeway(10 * time.Second),
		token.Trust("coupons", f.rings["coupons"], token.Accept(token.Confirmation, "order-processing"), token.Namespace("coupons")),
		token.Trust("points", f.rings["points"], token.Accept(token.Confirmation, "order-processing"), token.Namespace("points")),
		token.Trust("payments", f.rings["payments"], token.Accept(token.Confirmation, "order-processing"), token.Namespace("payments"),
			token.Algorithms(keys.EdDSA, keys.ES256)),
		token.Trust("gateway", f.rings["gateway"], token.Accept(token.Transaction, "tokenrelay")),
		token.Trust("identity", f.rings["identity"], token.Accept(token.Access, "tokenrelay-api")),
		token.Trust("order-processing", f.rings["order-processing"], token.Accept(token.Checkout, "coupons"), token.Accept(token.Workload, "coupons"),
			token.Accept(token.Assertion, "gateway")),
		// ledger signs with ES256 but is trusted for EdDSA only: its
		// genuine tokens fail the algorithm policy.
		token.Trust("ledger", f.rings["ledger"], token.Accept(token.Transaction, "tokenrelay")),
	}, append(f.foreign.trust(), opts...)...)
	f.trust = all
	f.v = f.verifier(tb)
	return f
}

// verifier returns a verifier with the fixture's trust and clock, and opts
// (which win).
func (f *fixture) verifier(tb testing.TB, opts ...token.Option) *token.Verifier {
	tb.Helper()
	v, err := token.NewVerifier(append(f.trust[:len(f.trust):len(f.trust)], opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// key returns the signing key of issuer, or the attacker's key "evil-ed"
// or "evil-es".
func (f *fixture) key(tb testing.TB, issuer string) *keys.PrivateKey {
	tb.Helper()
	if k, ok := f.evil[issuer]; ok {
		return k
	}
	k, err := f.rings[issuer].SigningKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// confirmation issues a valid confirmation token from issuer.
func (f *fixture) confirmation(tb testing.TB, issuer string) string {
	tb.Helper()
	raw, _, err := token.Issue(context.Background(), f.issuers[issuer], token.Confirmation, token.ConfirmationClaims{
		Registered:        token.Registered{Subject: "user-1", Audience: []string{"order-processing"}},
		OrderProcessingID: "op_1",
		Capabilities:      []string{issuer + ":redeem"},
		Constraints:       map[string]string{"amount_sha256": "abc"},
		Settlement:        token.Settlement{AmountMinor: 500, Currency: "EUR"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// transaction issues a valid transaction token from the gateway.
func (f *fixture) transaction(tb testing.TB) string {
	tb.Helper()
	raw, _, err := token.Issue(context.Background(), f.issuers["gateway"], token.Transaction, token.TransactionClaims{
		Registered:         token.Registered{Subject: "user-1", Audience: []string{"tokenrelay"}},
		Scope:              "checkout",
		Context:            map[string]string{"tenant": "acme"},
		RequestingWorkload: "gateway",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// members is an ordered JSON object under construction, so that tests can
// write duplicate, misspelt and mistyped members that no encoder would.
type members [][2]string

// with returns m with each "name=raw" edit applied: an existing member is
// replaced ("name=" with nothing after removes it); "+name=raw" appends even
// if the name exists.
func (m members) with(edits ...string) members {
	out := append(members(nil), m...)
	for _, e := range edits {
		name, val, _ := strings.Cut(e, "=")
		if dup, ok := strings.CutPrefix(name, "+"); ok {
			out = append(out, [2]string{dup, val})
			continue
		}
		i := 0
		for ; i < len(out) && out[i][0] != name; i++ {
		}
		switch {
		case i == len(out):
			out = append(out, [2]string{name, val})
		case val == "":
			out = append(out[:i], out[i+1:]...)
		default:
			out[i][1] = val
		}
	}
	return out
}

func (m members) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		// Names are written raw so that tests can spell escapes.
		fmt.Fprintf(&b, `"%s":%s`, kv[0], kv[1])
	}
	b.WriteByte('}')
	return b.String()
}

func header(k *keys.PrivateKey, typ string) members {
	return members{{"alg", `"` + k.Algorithm() + `"`}, {"kid", `"` + k.KID() + `"`}, {"typ", `"` + typ + `"`}}
}

func confClaims(issuer string) members {
	now := epoch.Unix()
	return members{
		{"iss", `"` + issuer + `"`},
		{"sub", `"user-1"`},
		{"aud", `"order-processing"`},
		{"iat", fmt.Sprint(now)},
		{"exp", fmt.Sprint(now + 120)},
		{"jti", `"jti-1"`},
		{"order_processing_id", `"op_1"`},
		{"capabilities", `["` + issuer + `:redeem"]`},
		{"constraints", `{"amount_sha256":"abc"}`},
		{"settlement", `{"amount_minor":500,"currency":"EUR"}`},
	}
}

// txnClaims are the claims of a valid transaction token of issuer.
func txnClaims(issuer string) members {
	now := epoch.Unix()
	return members{
		{"iss", `"` + issuer + `"`},
		{"sub", `"user-1"`},
		{"aud", `"tokenrelay"`},
		{"iat", fmt.Sprint(now)},
		{"exp", fmt.Sprint(now + 60)},
		{"txn", `"txn-1"`},
		{"tctx", `{"tenant":"acme"}`},
	}
}

// wlProcedure and wlDigest are the call a workload token of wlClaims is
// bound to.
const (
	wlProcedure = "/tokenrelay.capability.v1.CapabilityService/Exercise"
	wlDigest    = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" // SHA-256 of no bytes
)

// wlClaims are the claims of a valid workload token of OrderProcessing for
// coupons.
func wlClaims() members {
	now := epoch.Unix()
	return members{
		{"iss", `"order-processing"`},
		{"sub", `"order-processing"`},
		{"aud", `"coupons"`},
		{"iat", fmt.Sprint(now)},
		{"exp", fmt.Sprint(now + 60)},
		{"jti", `"wl-1"`},
		{"proc", `"` + wlProcedure + `"`},
		{"req", `"` + wlDigest + `"`},
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge signs arbitrary header and claims JSON with k.
func forge(tb testing.TB, k *keys.PrivateKey, hdr, claims string) string {
	tb.Helper()
	input := b64(hdr) + "." + b64(claims)
	sig, err := k.Sign(input)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
