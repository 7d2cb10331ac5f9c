package adapters

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"
	"github.com/tokenrelay/tokenrelay/services/points/internal/domain"
)

// keyrings returns rings holding versions 1..n of the same random keys.
func keyrings(t *testing.T, n int) []*vault.Keyring {
	t.Helper()
	all := map[uint32][]byte{}
	var out []*vault.Keyring
	for v := uint32(1); v <= uint32(n); v++ {
		all[v] = make([]byte, vault.KeySize)
		rand.Read(all[v])
		k, err := vault.New(all)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

func sealedTokens(t *testing.T, db *sqldb.DB) map[string]string {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), `SELECT jti, sealed_token FROM confirmations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var jti, sealed string
		if err := rows.Scan(&jti, &sealed); err != nil {
			t.Fatal(err)
		}
		out[jti] = sealed
	}
	return out
}

// TestReencrypt moves more than a page of confirmation tokens to a new key
// version, on SQLite and PostgreSQL, and checks that each still opens under
// its jti, that a second run changes nothing, and that a record that does
// not decrypt is reported without stopping the others.
func TestReencrypt(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		s, err := NewStore(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		rings := keyrings(t, 3)
		const n = vaultsql.PageSize + 5
		want := map[string]string{}
		for i := range n {
			jti := ids.New("")
			tok := fmt.Sprintf("token-%d", i)
			sealed, err := capability.VaultSealer{Keyring: rings[0]}.Seal(jti, tok)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.SaveConfirmation(ctx, domain.Confirmation{
				UserID: "u1", CheckoutID: ids.New("op"), Points: 1, Currency: "EUR",
				Kept: capability.Kept{JTI: jti, SealedToken: sealed, ExpiresAt: time.Now().Add(time.Minute), CreatedAt: time.Now()},
			}); err != nil {
				t.Fatal(err)
			}
			want[jti] = tok
		}
		if got, err := capabilitysql.Sealed.Versions(ctx, db); err != nil || got[1] != n || len(got) != 1 {
			t.Fatalf("before: SealedVersions = %v, %v", got, err)
		}

		changed, err := capabilitysql.Sealed.Reencrypt(ctx, db, rings[1])
		if err != nil || changed != n {
			t.Fatalf("Reencrypt = %d, %v; want %d", changed, err, n)
		}
		if got, err := capabilitysql.Sealed.Versions(ctx, db); err != nil || got[2] != n || len(got) != 1 {
			t.Fatalf("after: SealedVersions = %v, %v", got, err)
		}
		for jti, sealed := range sealedTokens(t, db) {
			if !strings.HasPrefix(sealed, "v2.") {
				t.Fatalf("%s still sealed as %.3s", jti, sealed)
			}
			tok, err := capability.VaultSealer{Keyring: rings[1]}.Open(jti, sealed)
			if err != nil || tok != want[jti] {
				t.Fatalf("open %s after re-encryption: %q, %v", jti, tok, err)
			}
		}
		if changed, err := capabilitysql.Sealed.Reencrypt(ctx, db, rings[1]); err != nil || changed != 0 {
			t.Fatalf("second run = %d, %v; want 0", changed, err)
		}

		// A record moved to another row no longer authenticates: reported by
		// jti, the others still move.
		var a, b string
		for jti := range want {
			if a == "" {
				a = jti
			} else {
				b = jti
				break
			}
		}
		if _, err := db.SQL().ExecContext(ctx, `UPDATE confirmations SET sealed_token = (SELECT sealed_token FROM confirmations WHERE jti = $1) WHERE jti = $2`, a, b); err != nil {
			t.Fatal(err)
		}
		changed, err = capabilitysql.Sealed.Reencrypt(ctx, db, rings[2])
		if changed != n-1 || !errors.Is(err, vault.ErrDecrypt) || !strings.Contains(err.Error(), "confirmations "+b) ||
			strings.Contains(err.Error(), "v2.") {
			t.Fatalf("with a bad record: %d, %v", changed, err)
		}
	})
}
