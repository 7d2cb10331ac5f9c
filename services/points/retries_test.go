package points_test

import (
	"log/slog"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/points"
)

// retries is how many times TestConcurrentRetries sends each request at once.
const retries = 50

// startReplicas serves n instances of Points over db, as scaled out.
func startReplicas(t *testing.T, db *sqldb.DB, n int) []*env {
	t.Helper()
	ds := capabilitytest.StartReplicas(t, points.Name, n, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
		return points.New(t.Context(), points.Config{DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)), Trust: tr})
	})
	out := make([]*env, n)
	for i, d := range ds {
		out[i] = &env{Domain: d, points: pointsv1connect.NewPointsServiceClient(d.HTTP, d.URL)}
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

			t.Run("GrantPoints", func(t *testing.T) {
				h := w.As(t, "usr_admin", "shop admin")
				msg := &pointsv1.GrantPointsRequest{UserId: "usr_grant", Points: 700, Reason: "welcome", IdempotencyKey: "grant-1"}
				capabilitytest.Same(t, "GrantPoints", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).points.GrantPoints(t.Context(), capabilitytest.Request(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if b := e.balance(t, "usr_grant"); b != 700 {
					t.Fatalf("balance = %d, want 700: one grant", b)
				}
				if c := count(t, db, `SELECT COUNT(*) FROM entries WHERE user_id = $1`, "usr_grant"); c != 1 {
					t.Fatalf("%d ledger entries, want 1", c)
				}
			})

			t.Run("ConfirmPoints", func(t *testing.T) {
				e.grant(t, "usr_confirm", 1000)
				h := w.As(t, "usr_confirm", "shop")
				msg := &pointsv1.ConfirmPointsRequest{
					CheckoutToken: w.Checkout(t, "usr_confirm", "op_confirm", 5000, "EUR", points.Name),
					Points:        300, IdempotencyKey: "confirm-1",
				}
				capabilitytest.Same(t, "ConfirmPoints", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).points.ConfirmPoints(t.Context(), capabilitytest.Request(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM confirmations WHERE user_id = $1`, "usr_confirm"); c != 1 {
					t.Fatalf("%d confirmations saved, want 1", c)
				}
			})

			e.grant(t, "usr_x", 1000)
			tok, err := e.confirm(t, "usr_x", "op_x", 400)
			if err != nil {
				t.Fatal(err)
			}
			t.Run("Exercise", func(t *testing.T) {
				capabilitytest.Same(t, "Exercise", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Exercise(t, tok, "ord_x")
					return text(x), err
				}))
				if b := e.balance(t, "usr_x"); b != 600 {
					t.Fatalf("balance after the exercises = %d, want 600: one spend", b)
				}
				if c := count(t, db, `SELECT COUNT(*) FROM entries WHERE user_id = $1 AND order_id = $2`, "usr_x", "ord_x"); c != 1 {
					t.Fatalf("%d ledger entries for the order, want 1", c)
				}
			})
			t.Run("Compensate", func(t *testing.T) {
				capabilitytest.Same(t, "Compensate", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Compensate(t, tok, "ord_x")
					return text(x), err
				}))
				if b := e.balance(t, "usr_x"); b != 1000 {
					t.Fatalf("balance after the compensations = %d, want 1000: one refund", b)
				}
				if c := count(t, db, `SELECT COUNT(*) FROM entries WHERE user_id = $1 AND order_id = $2`, "usr_x", "ord_x"); c != 2 {
					t.Fatalf("%d ledger entries for the order, want 2: the spend and one refund", c)
				}
			})
			t.Run("Compensate never exercised", func(t *testing.T) {
				tok, err := e.confirm(t, "usr_x", "op_v", 100)
				if err != nil {
					t.Fatal(err)
				}
				capabilitytest.Same(t, "Compensate (void)", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Compensate(t, tok, "ord_v")
					return text(x), err
				}))
				if b := e.balance(t, "usr_x"); b != 1000 {
					t.Fatalf("balance after the voids = %d, want 1000", b)
				}
				if c := count(t, db, `SELECT COUNT(*) FROM exercises WHERE order_id = $1`, "ord_v"); c != 1 {
					t.Fatalf("%d exercise records, want 1", c)
				}
			})
		})
	}
}
