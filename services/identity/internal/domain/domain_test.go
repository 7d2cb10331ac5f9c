package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

var cheap = domain.HashParams{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPassword(t *testing.T) {
	t.Parallel()
	h := domain.HashPassword("correct horse", cheap)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash = %q", h)
	}
	if h == domain.HashPassword("correct horse", cheap) {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		name, password, hash string
		ok                   bool
		wantErr              error
	}{
		{"right", "correct horse", h, true, nil},
		{"wrong", "correct horsf", h, false, nil},
		{"empty", "", h, false, nil},
		{"default params", "pw", domain.HashPassword("pw", domain.DefaultHashParams), true, nil},
		{"not argon2id", "pw", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", false, domain.ErrHashFormat},
		{"huge memory", "pw", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", false, domain.ErrHashFormat},
		{"garbage", "pw", "plain", false, domain.ErrHashFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := domain.VerifyPassword(tc.password, tc.hash)
			if ok != tc.ok || !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyPassword = %v, %v; want %v, %v", ok, err, tc.ok, tc.wantErr)
			}
		})
	}
}

func TestRefreshToken(t *testing.T) {
	t.Parallel()
	raw, hash := domain.NewRefreshToken()
	if !strings.HasPrefix(raw, "rt_") || len(raw) != 3+43 {
		t.Fatalf("token %q: want rt_ and 43 base64url characters (256 bits)", raw)
	}
	if domain.HashRefreshToken(raw) != hash || len(hash) != 64 || strings.Contains(hash, raw) {
		t.Fatalf("hash %q", hash)
	}
	if other, _ := domain.NewRefreshToken(); other == raw {
		t.Fatal("two tokens are equal")
	}
}

func TestNormalizeUsername(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{" Shopper ": "shopper", "ADMIN": "admin", "": "", "a b": "", strings.Repeat("x", 65): ""} {
		got, err := domain.NormalizeUsername(in)
		if got != want || (want == "") != errors.Is(err, domain.ErrInvalidArgument) {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
