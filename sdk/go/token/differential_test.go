package token_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// differentialReasons are the documented, intended reasons for which this
// package refuses a token that npm jose, verifying with the same trust,
// accepts: checks jose does not make. Any other difference, and any token
// this package accepts and jose refuses, fails TestDifferentialJose.
var differentialReasons = map[error]string{
	token.ErrHeader:        "a header parameter outside the issuer's allow-list (alg, kid, typ for tokenrelay's issuers; never jku, x5u, jwk, x5c, b64, cty, enc, zip): jose ignores the parameters it does not use",
	token.ErrDuplicateName: "a member name twice, or a registered claim name in another case from tokenrelay's issuers: JSON.parse keeps the last, which lets two parsers read two tokens",
	token.ErrLifetime:      "exp - iat beyond the kind's or the profile's maximum: jose bounds no lifetime",
	token.ErrClaims:        "a claim the kind requires (iat, sub, jti, client_id, txn ...) missing, or a claim of the wrong type or value: jose checks only the claims it is asked about",
	token.ErrTooLarge:      "a size limit (token, segment, arrays, members): jose has none",
	token.ErrCapability:    "a confirmation's capability outside its issuer's namespace: a tokenrelay claim",
	token.ErrType:          "typ not one of a profile's several values (jose takes one typ, so it is given none)",
	token.ErrMalformed:     "JSON or base64url that jose's decoders tolerate: non-canonical trailing bits, a byte order mark, nesting beyond 16",
	token.ErrNotYetValid:   "iat in the future: jose checks nbf only",
}

// differentialCases are differences of single cases, by name, with their
// reason: rounding a NumericDate's fraction toward the shorter life.
var differentialCases = map[string]string{
	"exp fraction rounded down: exactly leeway ago": "exp rounded down to whole seconds",
	"nbf fraction rounded up: beyond the leeway":    "nbf rounded up to whole seconds",
}

// TestDifferentialJose (issue 16) verifies every token of the adversarial
// table with this package and with npm jose, an independent JOSE
// implementation, under the same trust (issuers, keys, algorithms,
// audiences, typ, leeway, clock): both accept, or both refuse, or this
// package refuses for a documented reason above.
func TestDifferentialJose(t *testing.T) {
	t.Parallel()
	node, script := joseScript(t)
	f := newFixture(t)
	type issuerCfg struct {
		JWKS       json.RawMessage   `json:"jwks"`
		Algorithms []string          `json:"algorithms"`
		Tolerance  int               `json:"tolerance"`
		Accept     map[string]string `json:"accept"`
		Typ        map[string]string `json:"typ"`
	}
	ringJWKS := func(name string) json.RawMessage {
		rec := httptest.NewRecorder()
		f.rings[name].Handler().ServeHTTP(rec, httptest.NewRequest("GET", keys.WellKnownPath, nil))
		return rec.Body.Bytes()
	}
	setJWKS := func(s keySet) json.RawMessage {
		var all []*keys.PublicKey
		for _, k := range s {
			all = append(all, k)
		}
		return keys.MarshalJWKS(all)
	}
	same := func(typs ...string) map[string]string {
		m := map[string]string{}
		for _, t := range typs {
			m[t] = t
		}
		return m
	}
	conf := map[string]string{"confirmation+jwt": "order-processing"}
	issuers := map[string]issuerCfg{
		"coupons":          {ringJWKS("coupons"), []string{keys.EdDSA}, 10, conf, same("confirmation+jwt")},
		"points":           {ringJWKS("points"), []string{keys.EdDSA}, 10, conf, same("confirmation+jwt")},
		"payments":         {ringJWKS("payments"), []string{keys.EdDSA, keys.ES256}, 10, conf, same("confirmation+jwt")},
		"gateway":          {ringJWKS("gateway"), []string{keys.EdDSA}, 10, map[string]string{"txntoken+jwt": "tokenrelay"}, same("txntoken+jwt")},
		"ledger":           {ringJWKS("ledger"), []string{keys.EdDSA}, 10, map[string]string{"txntoken+jwt": "tokenrelay"}, same("txntoken+jwt")},
		"identity":         {ringJWKS("identity"), []string{keys.EdDSA}, 10, map[string]string{"at+jwt": "tokenrelay-api"}, same("at+jwt")},
		"order-processing": {ringJWKS("order-processing"), []string{keys.EdDSA}, 10, map[string]string{"checkout+jwt": "coupons", "wl+jwt": "coupons"}, same("checkout+jwt", "wl+jwt")},
		opIssuer:           {setJWKS(f.foreign.op), []string{keys.RS256, keys.PS256, keys.ES256}, 60, map[string]string{"at+jwt": "tokenrelay-api"}, same("at+jwt")},
		kcIssuer:           {setJWKS(f.foreign.kc), []string{keys.RS256}, 10, map[string]string{"at+jwt": "shop-api"}, map[string]string{"at+jwt": ""}},
		oktaIssuer:         {setJWKS(f.foreign.kc), []string{keys.RS256}, 10, map[string]string{"at+jwt": "api://shop"}, map[string]string{"at+jwt": ""}},
	}
	typOf := map[string]string{"": "confirmation+jwt", "confirmation": "confirmation+jwt", "transaction": "txntoken+jwt",
		"checkout": "checkout+jwt", "access": "at+jwt", "workload": "wl+jwt"}
	type item struct {
		Name  string `json:"name"`
		Typ   string `json:"typ"`
		Token string `json:"token"`
	}
	var items []item
	mine := map[string]error{}
	for _, tc := range adversarialCases() {
		typ, ok := typOf[tc.kind]
		if !ok || tc.opts != nil { // another clock or leeway than the peer's
			continue
		}
		raw := tc.raw(t, f)
		items = append(items, item{tc.name, typ, raw})
		mine[tc.name] = verifyAs(context.Background(), f.v, tc.kind, raw)
	}
	in, err := json.Marshal(map[string]any{"now": epoch.Unix(), "issuers": issuers, "tokens": items})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jose: %v\n%s", err, stderr.String())
	}
	var verdicts []struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
		Code string `json:"code"`
	}
	if err := json.Unmarshal(out, &verdicts); err != nil || len(verdicts) != len(items) {
		t.Fatalf("jose answered %d verdicts for %d tokens: %v", len(verdicts), len(items), err)
	}
	agree, both, documented := 0, 0, 0
	for _, v := range verdicts {
		err := mine[v.Name]
		switch {
		case (err == nil) == v.OK:
			agree++
			if v.OK {
				both++
			}
		case err == nil:
			t.Errorf("%s: accepted here, refused by jose (%s)", v.Name, v.Code)
		case differentialCases[v.Name] != "" || differentialReasons[token.Sentinel(err)] != "":
			documented++
		default:
			t.Errorf("%s: refused here (%v), accepted by jose, for no documented reason", v.Name, err)
		}
	}
	if agree < len(verdicts)/2 {
		t.Errorf("only %d of %d verdicts agree", agree, len(verdicts))
	}
	t.Logf("%d tokens: %d verdicts agree (%d accepted by both), %d refused here for a documented reason", len(verdicts), agree, both, documented)
}

// joseScript returns node and the differential script, or skips (fails
// under CI, as the real OpenID Connect provider's tests do) when node or
// npm jose is missing.
func joseScript(t *testing.T) (node, script string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "jose-verify.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	missing := func(why string) {
		msg := "the differential test needs npm jose: " + why + " (install Node.js and run `make install`)"
		if slices.Contains([]string{os.Getenv("TOKENRELAY_REQUIRE_OIDC_PROVIDER"), os.Getenv("TOKENRELAY_REQUIRE_POSTGRES")}, "1") {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if node, err = exec.LookPath("node"); err != nil {
		missing("node is not on PATH")
	}
	for dir := filepath.Dir(script); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose", "package.json")); err == nil {
			return node, script
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if filepath.Dir(dir) == dir {
			missing("npm package jose is not installed")
		}
	}
}
