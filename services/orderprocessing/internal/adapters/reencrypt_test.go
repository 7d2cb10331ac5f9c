package adapters_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// TestReencrypt moves the sealed tokens of every order step to a new key
// version, on SQLite and PostgreSQL, and reads them back through the store
// with the record id the saga opens them under.
func TestReencrypt(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		guard, err := replay.New(db)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(guard.Close)
		s, err := adapters.NewStore(ctx, db, guard)
		if err != nil {
			t.Fatal(err)
		}
		k1, k2 := make([]byte, vault.KeySize), make([]byte, vault.KeySize)
		rand.Read(k1)
		rand.Read(k2)
		v1, err := vault.New(map[uint32][]byte{1: k1})
		if err != nil {
			t.Fatal(err)
		}
		v2, err := vault.New(map[uint32][]byte{1: k1, 2: k2})
		if err != nil {
			t.Fatal(err)
		}

		now := time.Now().UTC().Truncate(time.Second)
		eur := func(n int64) money.Money { return money.Money{AmountMinor: n, Currency: "EUR"} }
		caps := []string{"coupons:redeem", "points:spend", "payments:capture"}
		var orders []string
		for i := range 3 {
			co := domain.Checkout{ID: ids.New("op"), UserID: "u1", Total: eur(300), Status: domain.CheckoutOpen,
				CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)}
			if _, _, err := s.CreateCheckout(ctx, co, domain.IssuedToken{}); err != nil {
				t.Fatal(err)
			}
			o := domain.Order{ID: ids.New("ord"), CheckoutID: co.ID, UserID: "u1", Total: eur(300), Status: domain.OrderPending,
				IdempotencyKey: fmt.Sprint("k", i), Version: 1, CreatedAt: now, UpdatedAt: now}
			for j, c := range caps {
				sealed, err := capability.VaultSealer{Keyring: v1}.Seal(app.TokenRecordID(o.ID, c), o.ID+"/"+c)
				if err != nil {
					t.Fatal(err)
				}
				o.Steps = append(o.Steps, domain.Step{Capability: c, Issuer: fmt.Sprint("issuer", j), Stage: 1 + j/2,
					State: domain.StepPending, Settlement: eur(100), JTI: ids.New(""), ExpiresAt: now.Add(2 * time.Minute),
					SealedToken: sealed})
			}
			if _, _, err := s.PlaceOrder(ctx, o, now); err != nil {
				t.Fatal(err)
			}
			orders = append(orders, o.ID)
		}
		if got, err := adapters.SealedColumns(app.TokenRecordID).Versions(ctx, db); err != nil || got[1] != 9 || len(got) != 1 {
			t.Fatalf("before: %v, %v", got, err)
		}

		changed, err := adapters.SealedColumns(app.TokenRecordID).Reencrypt(ctx, db, v2)
		if err != nil || changed != 9 {
			t.Fatalf("Reencrypt = %d, %v; want 9", changed, err)
		}
		if got, err := adapters.SealedColumns(app.TokenRecordID).Versions(ctx, db); err != nil || got[2] != 9 || len(got) != 1 {
			t.Fatalf("after: %v, %v", got, err)
		}
		for _, id := range orders {
			o, err := s.Order(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range o.Steps {
				tok, err := capability.VaultSealer{Keyring: v2}.Open(app.TokenRecordID(id, st.Capability), st.SealedToken)
				if err != nil || tok != id+"/"+st.Capability {
					t.Fatalf("%s %s after re-encryption: %q, %v", id, st.Capability, tok, err)
				}
			}
		}
		if changed, err := adapters.SealedColumns(app.TokenRecordID).Reencrypt(ctx, db, v2); err != nil || changed != 0 {
			t.Fatalf("second run = %d, %v", changed, err)
		}
	})
}
