package adapters_test

import (
	"crypto/rand"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
)

// TestReencrypt moves the sealed Login and Refresh results to a new key
// version and leaves the empty ones (no record) alone, on SQLite and
// PostgreSQL.
func TestReencrypt(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		s, err := adapters.NewStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		k1, k2 := make([]byte, vault.KeySize), make([]byte, vault.KeySize)
		rand.Read(k1)
		rand.Read(k2)
		v1, _ := vault.New(map[uint32][]byte{1: k1})
		v2, _ := vault.New(map[uint32][]byte{1: k1, 2: k2})
		seal := func(id string) string {
			sealed, err := capability.VaultSealer{Keyring: v1}.Seal(id, "result of "+id)
			if err != nil {
				t.Fatal(err)
			}
			return sealed
		}
		u := user(t, s, "shopper")
		// A session with a sealed Login result, one without.
		sealedSes := domain.Session{ID: ids.New("ses"), UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(domain.SessionLifetime), LoginKey: "k"}
		sealedSes.SealedLogin = seal("sessions/" + sealedSes.ID)
		_, hash := domain.NewRefreshToken()
		if _, _, err := s.CreateSession(ctx, sealedSes, domain.RefreshToken{Hash: hash, IssuedAt: t0, ExpiresAt: t0.Add(domain.RefreshTokenLifetime)}, t0); err != nil {
			t.Fatal(err)
		}
		_, rt := session(t, s, u)
		// A refresh with a sealed result: rotating rt stores it on rt's row.
		if _, err := s.Rotate(ctx, rt.Hash, next(t0), "key", seal("refresh_tokens/"+rt.Hash), t0); err != nil {
			t.Fatal(err)
		}
		if got, err := adapters.Sealed.Versions(ctx, db); err != nil || got[1] != 2 || len(got) != 1 {
			t.Fatalf("before: %v, %v", got, err)
		}
		if n, err := adapters.Sealed.Reencrypt(ctx, db, v2); err != nil || n != 2 {
			t.Fatalf("Reencrypt = %d, %v; want 2", n, err)
		}
		if got, err := adapters.Sealed.Versions(ctx, db); err != nil || got[2] != 2 || len(got) != 1 {
			t.Fatalf("after: %v, %v", got, err)
		}
		tok, _, err := s.RefreshToken(ctx, rt.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := (capability.VaultSealer{Keyring: v2}).Open("refresh_tokens/"+rt.Hash, tok.SealedResult); err != nil || got != "result of refresh_tokens/"+rt.Hash {
			t.Fatalf("refresh result after re-encryption: %q, %v", got, err)
		}
		if n, err := adapters.Sealed.Reencrypt(ctx, db, v2); err != nil || n != 0 {
			t.Fatalf("second run = %d, %v", n, err)
		}
	})
}
