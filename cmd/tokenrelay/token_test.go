package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// runCmd runs the command in process.
func runCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// confirmation issues a coupons confirmation token with ring.
func confirmation(t *testing.T, ring keys.Signer, aud string, iat, exp time.Time) string {
	t.Helper()
	return confirmationWith(t, ring, aud, iat, exp, map[string]string{"coupon": "cpn_1"})
}

func confirmationWith(t *testing.T, ring keys.Signer, aud string, iat, exp time.Time, constraints map[string]string) string {
	t.Helper()
	is, err := token.NewIssuer("coupons", ring)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := token.Issue(context.Background(), is, token.Confirmation, token.ConfirmationClaims{
		Registered:        token.Registered{Subject: "usr_shopper", Audience: []string{aud}, IssuedAt: iat, ExpiresAt: exp},
		OrderProcessingID: "op_42",
		Capabilities:      []string{"coupons:redeem"},
		Constraints:       constraints,
		Settlement:        token.Settlement{AmountMinor: 500, Currency: "EUR"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tamper replaces the claims of raw, keeping its header and signature.
func tamper(raw string) string {
	parts := strings.Split(raw, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	claims = bytes.Replace(claims, []byte(`"amount_minor":500`), []byte(`"amount_minor":6180`), 1)
	parts[1] = base64.RawURLEncoding.EncodeToString(claims)
	return strings.Join(parts, ".")
}

// signature returns the signature segment: no output may contain it.
func signature(raw string) string { return raw[strings.LastIndexByte(raw, '.')+1:] }

func TestTokenInspect(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := confirmation(t, ring, "order-processing", now, now.Add(2*time.Minute))
	expired := confirmation(t, ring, "order-processing", now.Add(-5*time.Minute), now.Add(-3*time.Minute))
	kid, _ := ring.SigningKey()
	vk, err := vault.LoadDir(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	sl, err := sealed.New(vk, "coupons", sealed.A256KW)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sl.Seal(map[string]string{"coupon": "cpn_secret_1"})
	if err != nil {
		t.Fatal(err)
	}
	sealedTok := confirmationWith(t, ring, "order-processing", now, now.Add(2*time.Minute), sc)
	badSealed := confirmationWith(t, ring, "order-processing", now, now.Add(2*time.Minute), map[string]string{sealed.Member: "x.y"})

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"argument", "", []string{valid}, []string{
			"NOT VERIFIED", `"alg": "EdDSA"`, `"typ": "confirmation+jwt"`, `"kid": "` + kid.KID() + `"`,
			`"capabilities": [`, "confirmation token (confirmation+jwt)", "coupons:redeem", "500 EUR (minor units)",
			"op_42", "usr_shopper", "order-processing", "expires in ", "64 bytes",
		}},
		{"stdin dash", valid + "\n", []string{"-"}, []string{"NOT VERIFIED", "confirmation token"}},
		{"stdin bearer", "Bearer " + valid, nil, []string{"NOT VERIFIED", "confirmation token"}},
		{"sealed constraints", "", []string{sealedTok}, []string{
			"SEALED for coupons alone (JWE A256KW + A256GCM, key version 1", "not opened)",
		}},
		{"malformed sealed constraints", "", []string{badSealed}, []string{
			"sealed, malformed", "constraints look sealed but no issuer opens them",
		}},
		{"expired", "", []string{expired}, []string{"(expired 3m", "Warnings:", "expired: no verifier accepts it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runCmd(t, tt.stdin, append([]string{"token", "inspect"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "cpn_secret_1") {
				t.Fatal("output shows a sealed constraint")
			}
			if strings.Contains(out, signature(valid)) || strings.Contains(out, signature(expired)) {
				t.Fatal("output contains the signature")
			}
		})
	}
}

func TestTokenInspectBadInput(t *testing.T) {
	t.Parallel()
	hostile := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","jku":"https://evil","typ":"at+jwt","kid":"k"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"\u001b[31mred","sub":"x","exp":1}`)) + ".c2ln"
	tests := []struct {
		name, input string
		code        int
		want        string // in stderr for failures, in stdout otherwise
	}{
		{"empty", "", exitFail, "no token given"},
		{"one segment", "definitely-not-a-token-SECRET", exitFail, "got 1 segment"},
		{"jwe", "a.b.c.d.e", exitFail, "encrypted token (JWE)"},
		{"bad base64", "ey!!.eyJ9.c2ln", exitFail, "header segment: not base64url"},
		{"not json", base64.RawURLEncoding.EncodeToString([]byte("SECRETSECRET")) + ".e30.c2ln", exitFail, "header: not valid JSON"},
		{"array", "W10.e30.c2ln", exitFail, "header: not a JSON object"},
		{"too large", strings.Repeat("A", maxTokenInput+10), exitFail, "input exceeds"},
		{"hostile but decodable", hostile, exitOK, "header parameters other than alg, kid and typ are refused: jku"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runCmd(t, tt.input, "token", "inspect")
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tt.code, out, errOut)
			}
			got := errOut
			if code == exitOK {
				got = out
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("want %q in:\n%s", tt.want, got)
			}
			if tt.input != "" && code != exitOK && strings.Contains(out+errOut, tt.input) {
				t.Fatal("the input is echoed")
			}
			if strings.Contains(out+errOut, "SECRET") || strings.Contains(out+errOut, "\x1b") {
				t.Fatalf("input or a control character echoed:\n%q", out+errOut)
			}
		})
	}
	// A foreign provider's access token (issue 16): RS256, x5t, a
	// 256-byte signature are not warned about as never accepted.
	foreign := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k","typ":"JWT","x5t":"abc"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","exp":1}`)) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 256))
	fout, _, _ := runCmd(t, foreign, "token", "inspect")
	if !strings.Contains(fout, "only in the access tokens of a foreign OpenID Connect provider") ||
		!strings.Contains(fout, "ignored in a foreign provider's access token: x5t") ||
		strings.Contains(fout, "never accepted") || strings.Contains(fout, "signature is") {
		t.Errorf("foreign provider's token:\n%s", fout)
	}
	out, _, _ := runCmd(t, hostile, "token", "inspect")
	for _, w := range []string{`alg "none" is never accepted`, `claim "sub" appears more than once`, `\u001b[31mred`} {
		if !strings.Contains(out, w) {
			t.Errorf("hostile token: output lacks %q:\n%s", w, out)
		}
	}
}

func TestTokenVerify(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ring.Handler())
	t.Cleanup(srv.Close)
	dir := filepath.Join(t.TempDir(), "coupons")
	diskRing, err := keys.OpenRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := confirmation(t, ring, "order-processing", now, now.Add(2*time.Minute))
	jwksArgs := []string{"token", "verify", "--jwks", srv.URL + keys.WellKnownPath, "--issuer", "coupons",
		"--kind", "confirmation", "--audience", "order-processing"}

	tests := []struct {
		name  string
		args  []string
		token string
		code  int
		want  string
	}{
		{"valid", jwksArgs, valid, exitOK, "valid: a confirmation token of issuer coupons"},
		{"valid from a key ring", []string{"token", "verify", "--keys", dir, "--issuer", "coupons", "--kind", "confirmation",
			"--audience", "order-processing"}, confirmation(t, diskRing, "order-processing", now, now.Add(time.Minute)), exitOK, "valid:"},
		{"expired", jwksArgs, confirmation(t, ring, "order-processing", now.Add(-5*time.Minute), now.Add(-3*time.Minute)),
			exitFail, "invalid: token expired\n"},
		{"tampered", jwksArgs, tamper(valid), exitFail, "invalid: token signature invalid"},
		{"wrong audience", jwksArgs, confirmation(t, ring, "payments", now, now.Add(time.Minute)), exitFail,
			"invalid: token audience not accepted"},
		{"wrong kind", []string{"token", "verify", "--jwks", srv.URL + keys.WellKnownPath, "--issuer", "coupons",
			"--kind", "checkout", "--audience", "order-processing"}, valid, exitFail, "invalid: token type not accepted"},
		{"wrong issuer", []string{"token", "verify", "--jwks", srv.URL + keys.WellKnownPath, "--issuer", "points",
			"--kind", "confirmation", "--audience", "order-processing"}, valid, exitFail,
			// A token of an issuer the verifier does not trust has no key to
			// check it with: refused as a bad signature; the detail says why.
			"invalid: token signature invalid\n  detail: token signature invalid: iss names no trusted issuer"},
		{"wrong namespace", append(jwksArgs[:len(jwksArgs):len(jwksArgs)], "--namespace", "points"), valid, exitFail,
			"invalid: token capability outside the issuer's namespace"},
		{"key of another ring", jwksArgs, confirmation(t, other, "order-processing", now, now.Add(time.Minute)), exitFail,
			"invalid: token signature invalid\n  detail: token signature invalid: no key of this kid at the issuer: keys: key not found"},
		{"flags after the token", []string{"token", "verify", valid, "--jwks", srv.URL + keys.WellKnownPath, "--issuer", "coupons",
			"--kind", "confirmation", "--audience", "order-processing"}, "", exitOK, "valid:"},
		{"no issuer", []string{"token", "verify", "--jwks", srv.URL, "--kind", "confirmation", "--audience", "x"}, valid, exitUsage, "--issuer is required"},
		{"jwks and keys", append(jwksArgs[:len(jwksArgs):len(jwksArgs)], "--keys", dir), valid, exitUsage, "exactly one of --jwks and --keys"},
		{"unknown kind", []string{"token", "verify", "--keys", dir, "--issuer", "coupons", "--kind", "id", "--audience", "x"}, valid, exitUsage, "--kind must be"},
		{"no ring", []string{"token", "verify", "--keys", t.TempDir(), "--issuer", "coupons", "--kind", "confirmation", "--audience", "x"}, valid, exitFail, "no key ring"},
		{"bad algorithm", append(jwksArgs[:len(jwksArgs):len(jwksArgs)], "--alg", "HS256"), valid, exitUsage, "never accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.token != "" {
				args = append(args[:len(args):len(args)], tt.token)
			}
			out, errOut, code := runCmd(t, "", args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s%s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("want %q in:\n%s%s", tt.want, out, errOut)
			}
			if tt.token != "" && strings.Contains(out+errOut, signature(tt.token)) {
				t.Fatal("output contains the token's signature")
			}
		})
	}
}

func TestHuman(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", 42 * time.Second: "42s", 3 * time.Minute: "3m", 3*time.Minute + 12*time.Second: "3m12s",
		5*time.Hour + 3*time.Minute: "5h3m", 2 * time.Hour: "2h", 52 * time.Hour: "2d4h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}
