package sealed_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// FuzzOpen feeds the opener arbitrary sealed values under a fixed ring of
// versions 1 and 2: it must never panic, refuse everything it does not open
// with ErrSealed, agree with Describe on the form, and open only what
// authenticates, which random input never does.
func FuzzOpen(f *testing.F) {
	ring, err := vault.ParseKeys("1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))) +
		",2:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("K", 32))))
	if err != nil {
		f.Fatal(err)
	}
	s, err := sealed.New(ring, "payments", "")
	if err != nil {
		f.Fatal(err)
	}
	kw, _ := sealed.New(ring, "payments", sealed.A256KW)
	for _, x := range []*sealed.Sealer{s, kw} {
		c, err := x.Seal(map[string]string{"authorization_id": "auth_1", "amount_sha256": "00ff"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c[sealed.Member])
		parts := strings.Split(c[sealed.Member], ".")
		f.Add(strings.Join(parts[:4], "."))
		f.Add(parts[0] + "...." + parts[4])
	}
	for _, h := range []string{
		`{"alg":"dir","enc":"A256GCM","kid":"v1","zip":"DEF"}`,
		`{"alg":"A256KW","enc":"A256GCM","kid":"v2"}`,
		`{"alg":"dir","enc":"A128GCM","kid":"v1"}`,
		`{"alg":"dir","enc":"A256GCM","kid":"v99"}`,
	} {
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(h)) + "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA")
	}
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		c := map[string]string{sealed.Member: v}
		out, err := s.Open(c)
		_, derr := sealed.Describe(c)
		if err != nil {
			if !errors.Is(err, sealed.ErrSealed) {
				t.Fatalf("refusal does not wrap ErrSealed: %v", err)
			}
			return
		}
		if derr != nil {
			t.Fatalf("opened what Describe refuses: %v", derr)
		}
		if out == nil {
			t.Fatal("opened to nil")
		}
	})
}
