package payments_test

import (
	"log/slog"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/payments"
)

// retries is how many times TestConcurrentRetries sends each request at once.
const retries = 50

// startReplicas serves n instances of Payments over db, with the simulated
// processor on proc, as scaled out.
func startReplicas(t *testing.T, db, proc *sqldb.DB, n int) []*env {
	t.Helper()
	ds := capabilitytest.StartReplicas(t, payments.Name, n, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
		return payments.New(t.Context(), payments.Config{
			DB: db, ProcessorDB: proc, Vault: vk, Trust: tr,
			Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
		})
	})
	out := make([]*env, n)
	for i, d := range ds {
		out[i] = &env{Domain: d, proc: proc, logs: &syncBuffer{}, payments: paymentsv1connect.NewPaymentsServiceClient(d.HTTP, d.URL)}
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
// call gets the one stored result, and the effect happens once (one method,
// one card at the processor, one hold, one capture, one refund).
func TestConcurrentRetries(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			db, proc, n := sqldbtest.SQLite(t), sqldbtest.SQLite(t), 1
			if store == "postgres" {
				db, proc, n = sqldbtest.Postgres(t), sqldbtest.Postgres(t), 2
			}
			es := startReplicas(t, db, proc, n)
			e, w := es[0], es[0].World
			on := func(i int) *env { return es[i%len(es)] }
			month, year := expiry()

			t.Run("AddPaymentMethod", func(t *testing.T) {
				h := w.As(t, "usr_admin", "shop admin")
				msg := &paymentsv1.AddPaymentMethodRequest{UserId: "usr_add", CardNumber: cardMastercard,
					ExpiryMonth: month, ExpiryYear: year, Label: "work", IdempotencyKey: "add-1"}
				cards := count(t, proc, `SELECT COUNT(*) FROM sim_cards`)
				capabilitytest.Same(t, "AddPaymentMethod", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).payments.AddPaymentMethod(t.Context(), capabilitytest.Request(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM payment_methods WHERE user_id = $1`, "usr_add"); c != 1 {
					t.Fatalf("%d payment methods stored, want 1", c)
				}
				if c := count(t, proc, `SELECT COUNT(*) FROM sim_cards`) - cards; c != 1 {
					t.Fatalf("%d cards handed to the processor, want 1", c)
				}
			})

			t.Run("ConfirmPayment", func(t *testing.T) {
				pm := e.add(t, "usr_confirm", cardApprove)
				holds := e.holds(t)
				h := w.As(t, "usr_confirm", "shop")
				msg := &paymentsv1.ConfirmPaymentRequest{
					CheckoutToken:   w.Checkout(t, "usr_confirm", "op_confirm", 3000, "EUR", payments.Name),
					PaymentMethodId: pm.GetId(), Amount: eur(2500), IdempotencyKey: "confirm-1",
				}
				capabilitytest.Same(t, "ConfirmPayment", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					res, err := on(i).payments.ConfirmPayment(t.Context(), capabilitytest.Request(h, msg))
					if err != nil {
						return "", err
					}
					return text(res.Msg), nil
				}))
				if c := count(t, db, `SELECT COUNT(*) FROM confirmations WHERE user_id = $1`, "usr_confirm"); c != 1 {
					t.Fatalf("%d confirmations saved, want 1", c)
				}
				if c := e.holds(t) - holds; c != 1 {
					t.Fatalf("%d holds placed, want 1", c)
				}
			})

			pm := e.add(t, "usr_x", cardApprove)
			conf, err := e.confirm(t.Context(), t, "usr_x", "op_x", 3000, "EUR", pm.GetId(), eur(3000))
			if err != nil {
				t.Fatal(err)
			}
			tok, auth := conf.GetConfirmationToken(), conf.GetAuthorizationId()
			t.Run("Exercise", func(t *testing.T) {
				capabilitytest.Same(t, "Exercise", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Exercise(t, tok, "ord_x")
					return text(x), err
				}))
				if s := e.hold(t, auth); s != "captured" {
					t.Fatalf("after the exercises hold = %s, want captured", s)
				}
				if c := count(t, db, `SELECT COUNT(*) FROM exercises WHERE order_id = $1`, "ord_x"); c != 1 {
					t.Fatalf("%d exercise records, want 1", c)
				}
			})
			t.Run("Compensate", func(t *testing.T) {
				capabilitytest.Same(t, "Compensate", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Compensate(t, tok, "ord_x")
					return text(x), err
				}))
				if s := e.hold(t, auth); s != "refunded" {
					t.Fatalf("after the compensations hold = %s, want refunded", s)
				}
			})
			t.Run("Compensate never exercised", func(t *testing.T) {
				conf, err := e.confirm(t.Context(), t, "usr_x", "op_v", 3000, "EUR", pm.GetId(), eur(1000))
				if err != nil {
					t.Fatal(err)
				}
				capabilitytest.Same(t, "Compensate (void)", capabilitytest.Concurrently(retries, func(i int) (string, error) {
					x, err := on(i).Compensate(t, conf.GetConfirmationToken(), "ord_v")
					return text(x), err
				}))
				if s := e.hold(t, conf.GetAuthorizationId()); s != "voided" {
					t.Fatalf("after the compensations hold = %s, want voided", s)
				}
				if c := count(t, db, `SELECT COUNT(*) FROM exercises WHERE order_id = $1`, "ord_v"); c != 1 {
					t.Fatalf("%d exercise records, want 1", c)
				}
			})
		})
	}
}
