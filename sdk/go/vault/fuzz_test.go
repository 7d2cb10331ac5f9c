package vault_test

import (
	"errors"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// FuzzParseRecord feeds arbitrary text to the record decoder and then to
// Decrypt: neither may panic, an accepted record must re-encode to exactly
// its input, and decryption may only succeed or fail with a sentinel.
func FuzzParseRecord(f *testing.F) {
	k := newRing(f, 1, 2)
	for i, pt := range []string{"", "token", "a longer confirmation token value"} {
		rec, err := k.Encrypt([]byte(pt), "id")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec.Encode(), "id")
		f.Add(rec.Encode()[:len(rec.Encode())-i-1], "id")
	}
	f.Add("v1..", "id")
	f.Add("v99.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", "id")
	f.Add("v0.x.y", "")
	f.Fuzz(func(t *testing.T, s, id string) {
		rec, err := vault.ParseRecord(s)
		if err != nil {
			if !errors.Is(err, vault.ErrMalformedRecord) {
				t.Fatalf("ParseRecord error %v is not ErrMalformedRecord", err)
			}
			return
		}
		if got := rec.Encode(); got != s {
			t.Fatalf("Encode(ParseRecord(%q)) = %q", s, got)
		}
		_, err = k.Decrypt(rec, id)
		switch {
		case err == nil, errors.Is(err, vault.ErrDecrypt), errors.Is(err, vault.ErrUnknownKeyVersion), errors.Is(err, vault.ErrEmptyID):
		default:
			t.Fatalf("Decrypt error %v is not a sentinel", err)
		}
	})
}
