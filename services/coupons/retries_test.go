package coupons_test

import (
	"log/slog"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons"
)

// retries is how many times TestConcurrentRetries sends each request at once.
const retries = 50

// startReplicas serves n instances of Coupons over db, as scaled out.
func startReplicas(t *testing.T, db *sqldb.DB, n int) []*env {
	t.Helper()
	ds := capabilitytest.StartReplicas(t, coupons.Name, n, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
		return coupons.New(t.Context(), coupons.Config{DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)), Trust: tr})
	})
	out := make([]*env, n)
	for i, d := range ds {
		out[i] = &env{Domain: d, coupons: couponsv1connect.NewCouponsServiceClient(d.HTTP, d.URL)}
	}
	return out
}

// text is a response as a comparable string: retries of one request must
// get equal responses.
func text(m proto.Message) string { return prototext.MarshalOptions{}.Format(m) }

// count runs a COUNT(*) query on db.
func count(t *testing.T, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentRetries sends each mutating RPC retries times at once, with
// one idempotency key (Exercise and Compensate: one token and order), on
// SQLite and, through two replicas over one database, on PostgreSQL: every
// call gets the one stored result, and the effect happens once.
func TestConcurrentRetries(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			db, n := sqldbtest.SQLite(t), 1
			if store == "postgres" {
				db, n = sqldbtest.Postgres(t), 2
			}
			es := startReplicas(t, db, n)
			e, w := es[0], es[0].World
			on := func(i int) *env { return es[i%len(es)] }

			t.Run("GrantCoupon", func(t *testing.T) {
				h := w.As(t, "usr_admin", "shop admin")
				msg := &couponsv1.GrantCouponRequest{UserId: "usr_grant", Campaign: campaign("RETRY-GRANT"), IdempotencyKey: "grant-1"}
				capabilitytest.Same(t, "GrantCoupon", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).coupons.GrantCoupon(t.Context(), capabilitytest.Request(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM coupons WHERE user_id = $1`, "usr_grant"); c != 1 {
					t.Fatalf("%d coupons granted, want 1", c)
				}
			})

			t.Run("ConfirmCoupon", func(t *testing.T) {
				e.grant(t, "usr_confirm", campaign("RETRY-CONFIRM"))
				h := w.As(t, "usr_confirm", "shop")
				msg := &couponsv1.ConfirmCouponRequest{
					CheckoutToken: w.Checkout(t, "usr_confirm", "op_confirm", 3000, "EUR", coupons.Name),
					Code:          "RETRY-CONFIRM", IdempotencyKey: "confirm-1",
				}
				capabilitytest.Same(t, "ConfirmCoupon", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).coupons.ConfirmCoupon(t.Context(), capabilitytest.Request(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM confirmations WHERE user_id = $1`, "usr_confirm"); c != 1 {
					t.Fatalf("%d confirmations saved, want 1", c)
				}
			})

			e.grant(t, "usr_x", campaign("RETRY-EXERCISE"))
			conf, err := e.confirm(t, "usr_x", "op_x", 3000, "EUR", "RETRY-EXERCISE")
			if err != nil {
				t.Fatal(err)
			}
			tok := conf.GetConfirmationToken()
			t.Run("Exercise", func(t *testing.T) {
				capabilitytest.Same(t, "Exercise", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Exercise(t, tok, "ord_x")
					return text(x), err
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM exercises WHERE order_id = $1`, "ord_x"); c != 1 {
					t.Fatalf("%d exercise records, want 1", c)
				}
				if s := e.state(t, "usr_x", "RETRY-EXERCISE"); s != couponsv1.CouponState_COUPON_STATE_REDEEMED {
					t.Fatalf("after the exercises state = %v", s)
				}
			})
			t.Run("Compensate", func(t *testing.T) {
				capabilitytest.Same(t, "Compensate", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Compensate(t, tok, "ord_x")
					return text(x), err
				}))
				if s := e.state(t, "usr_x", "RETRY-EXERCISE"); s != couponsv1.CouponState_COUPON_STATE_AVAILABLE {
					t.Fatalf("after the compensations state = %v", s)
				}
			})
			t.Run("Compensate never exercised", func(t *testing.T) {
				e.grant(t, "usr_v", campaign("RETRY-VOID"))
				conf, err := e.confirm(t, "usr_v", "op_v", 3000, "EUR", "RETRY-VOID")
				if err != nil {
					t.Fatal(err)
				}
				capabilitytest.Same(t, "Compensate (void)", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Compensate(t, conf.GetConfirmationToken(), "ord_v")
					return text(x), err
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM exercises WHERE order_id = $1`, "ord_v"); c != 1 {
					t.Fatalf("%d exercise records, want 1", c)
				}
			})
		})
	}
}
