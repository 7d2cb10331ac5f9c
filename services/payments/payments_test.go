package payments_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/payments"
)

// The simulated processor's test cards (see the package documentation).
const (
	cardApprove     = "4242424242424242"
	cardDecline     = "4000000000000002"
	cardFailCapture = "4000000000000341"
	cardTimeout     = "4000000000009995"
	cardMastercard  = "5555555555554444"
)

var protocols = map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}}

type env struct {
	*capabilitytest.Domain
	proc     *sqldb.DB // the simulated processor's database, to look at its holds
	logs     *syncBuffer
	payments paymentsv1connect.PaymentsServiceClient
}

// syncBuffer collects the service's log lines from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// processorDB opens the simulated processor's database: a handle of its own
// on the same kind of store as db, as Config.ProcessorDB requires.
func processorDB(t *testing.T, db *sqldb.DB) *sqldb.DB {
	t.Helper()
	if db.Dialect() == sqldb.Postgres {
		return sqldbtest.Postgres(t)
	}
	return sqldbtest.SQLite(t)
}

func start(t *testing.T, db, proc *sqldb.DB, opts ...connect.ClientOption) *env {
	t.Helper()
	logs := &syncBuffer{}
	d := capabilitytest.Start(t, payments.Name, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
		return payments.New(t.Context(), payments.Config{
			DB: db, ProcessorDB: proc, Vault: vk, Trust: tr,
			Logger: slog.New(authn.NewLogHandler(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		})
	}, opts...)
	return &env{Domain: d, proc: proc, logs: logs, payments: paymentsv1connect.NewPaymentsServiceClient(d.HTTP, d.URL, opts...)}
}

func eur(n int64) *typev1.Money { return &typev1.Money{AmountMinor: n, Currency: "EUR"} }

// expiry is a valid card expiry: three years from now, in December.
func expiry() (month, year int32) { return 12, int32(time.Now().Year() + 3) }

func (e *env) add(t *testing.T, user, number string) *paymentsv1.PaymentMethod {
	t.Helper()
	m, y := expiry()
	res, err := e.payments.AddPaymentMethod(t.Context(), capabilitytest.Request(e.World.As(t, "usr_admin", "shop admin"), &paymentsv1.AddPaymentMethodRequest{
		UserId: user, CardNumber: number, ExpiryMonth: m, ExpiryYear: y, Label: "test " + number[len(number)-4:],
	}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetPaymentMethod()
}

func (e *env) methods(t *testing.T, user string) *paymentsv1.ListPaymentMethodsResponse {
	t.Helper()
	res, err := e.payments.ListPaymentMethods(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &paymentsv1.ListPaymentMethodsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg
}

func (e *env) confirm(ctx context.Context, t *testing.T, user, checkout string, total int64, currency, method string, amount *typev1.Money) (*paymentsv1.ConfirmPaymentResponse, error) {
	t.Helper()
	res, err := e.payments.ConfirmPayment(ctx, capabilitytest.Request(e.World.As(t, user, "shop"), &paymentsv1.ConfirmPaymentRequest{
		CheckoutToken:   e.World.Checkout(t, user, checkout, total, currency, "coupons", "points", "payments"),
		PaymentMethodId: method, Amount: amount,
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (e *env) hold(t *testing.T, authorizationID string) string {
	t.Helper()
	var state string
	if err := e.proc.SQL().QueryRowContext(t.Context(), `SELECT state FROM sim_holds WHERE id = $1`, authorizationID).Scan(&state); err != nil {
		t.Fatalf("hold %s: %v", authorizationID, err)
	}
	return state
}

// holds counts the holds at the simulated processor.
func (e *env) holds(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.proc.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sim_holds`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCycle runs add method -> list -> confirm (hold) -> exercise (capture)
// -> compensate (refund) through the generated clients, on both stores and
// both protocols.
func TestCycle(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		proc := processorDB(t, db)
		for name, opts := range protocols {
			t.Run(name, func(t *testing.T) {
				e := start(t, db, proc, opts...)
				user, checkout, order := "usr_"+name, "op_"+name, "ord_"+name
				pm := e.add(t, user, cardApprove)
				if !strings.HasPrefix(pm.GetId(), "pm_") || pm.GetBrand() != "visa" || pm.GetLast4() != "4242" {
					t.Fatalf("AddPaymentMethod = %v", pm)
				}
				list := e.methods(t, user).GetPaymentMethods()
				if len(list) != 1 || !proto.Equal(list[0], pm) {
					t.Fatalf("ListPaymentMethods = %v, want [%v]", list, pm)
				}
				conf, err := e.confirm(t.Context(), t, user, checkout, 3000, "EUR", pm.GetId(), eur(2500))
				if err != nil {
					t.Fatal(err)
				}
				if conf.GetAmount().GetAmountMinor() != 2500 || !strings.HasPrefix(conf.GetAuthorizationId(), "auth_") ||
					conf.GetPaymentMethod().GetId() != pm.GetId() || !conf.GetExpiresAt().AsTime().After(time.Now()) {
					t.Fatalf("ConfirmPayment = %v", conf)
				}
				auth := conf.GetAuthorizationId()
				if s := e.hold(t, auth); s != "authorized" {
					t.Fatalf("after confirm hold = %s, want authorized", s)
				}
				x, err := e.Exercise(t, conf.GetConfirmationToken(), order)
				if err != nil {
					t.Fatal(err)
				}
				if x.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_APPLIED || x.GetCapability() != "payments:capture" ||
					!strings.HasPrefix(x.GetReference(), "cap_") || x.GetSettlement().GetAmountMinor() != 2500 || x.GetOrderId() != order {
					t.Fatalf("Exercise = %v", x)
				}
				if s := e.hold(t, auth); s != "captured" {
					t.Fatalf("after exercise hold = %s, want captured", s)
				}
				again, err := e.Exercise(t, conf.GetConfirmationToken(), order)
				if err != nil || again.GetReference() != x.GetReference() {
					t.Fatalf("retried Exercise = %v, %v; want the first capture %s", again, err, x.GetReference())
				}
				if _, err := e.Exercise(t, conf.GetConfirmationToken(), "ord_other"); connect.CodeOf(err) != connect.CodeAlreadyExists {
					t.Fatalf("replay for another order: %v, want already_exists", err)
				}
				c, err := e.Compensate(t, conf.GetConfirmationToken(), order)
				if err != nil {
					t.Fatal(err)
				}
				if c.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_COMPENSATED || c.GetCompensatedAt() == nil || c.GetAppliedAt() == nil {
					t.Fatalf("Compensate = %v", c)
				}
				if s := e.hold(t, auth); s != "refunded" {
					t.Fatalf("after compensation hold = %s, want refunded", s)
				}
				if c, err := e.Compensate(t, conf.GetConfirmationToken(), order); err != nil || c.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_COMPENSATED {
					t.Fatalf("retried Compensate = %v, %v", c, err)
				}
			})
		}
	})
}

// TestConfirmIdempotent retries ConfirmPayment with the same key, in the
// header: same token, same hold, no second hold.
func TestConfirmIdempotent(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t), sqldbtest.SQLite(t))
	pm := e.add(t, "usr_alice", cardApprove)
	checkout := e.World.Checkout(t, "usr_alice", "op_1", 3000, "EUR", payments.Name)
	confirm := func(amount int64) (*paymentsv1.ConfirmPaymentResponse, error) {
		h := e.World.As(t, "usr_alice", "shop")
		h.Set("Idempotency-Key", "key-1")
		res, err := e.payments.ConfirmPayment(t.Context(), capabilitytest.Request(h, &paymentsv1.ConfirmPaymentRequest{
			CheckoutToken: checkout, PaymentMethodId: pm.GetId(), Amount: eur(amount),
		}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	first, err := confirm(1000)
	if err != nil {
		t.Fatal(err)
	}
	second, err := confirm(1000)
	if err != nil {
		t.Fatal(err)
	}
	if second.GetConfirmationToken() != first.GetConfirmationToken() || second.GetAuthorizationId() != first.GetAuthorizationId() {
		t.Fatalf("retry = %v, want %v", second, first)
	}
	if _, err := confirm(1001); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("same key, other amount: %v, want invalid_argument", err)
	}
	if n := e.holds(t); n != 1 {
		t.Fatalf("holds = %d, want 1", n)
	}
}

// TestRefusals sends every kind of bad request: each gets its code and
// changes nothing.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t), sqldbtest.SQLite(t))
	visa := e.add(t, "usr_alice", cardApprove)
	declining := e.add(t, "usr_alice", cardDecline)
	bobs := e.add(t, "usr_bob", cardMastercard)
	good, err := e.confirm(t.Context(), t, "usr_alice", "op_1", 3000, "EUR", visa.GetId(), eur(3000))
	if err != nil {
		t.Fatal(err)
	}
	foreign, expired := e.Forged(t, token.ConfirmationClaims{
		Registered: token.Registered{Subject: "usr_alice", Audience: []string{"order-processing"}}, OrderProcessingID: "op_1",
		Capabilities: []string{"payments:capture"}, Settlement: token.Settlement{AmountMinor: 3000, Currency: "EUR"},
	})
	parts := strings.Split(good.GetConfirmationToken(), ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]

	add := func(scope, number string, month, year int32) func() error {
		return func() error {
			_, err := e.payments.AddPaymentMethod(t.Context(), capabilitytest.Request(e.World.As(t, "usr_admin", scope), &paymentsv1.AddPaymentMethodRequest{
				UserId: "usr_alice", CardNumber: number, ExpiryMonth: month, ExpiryYear: year,
			}))
			return err
		}
	}
	month, year := expiry()
	confirm := func(user, owner string, total int64, currency, method string, amount *typev1.Money) func() error {
		return func() error {
			_, err := e.payments.ConfirmPayment(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &paymentsv1.ConfirmPaymentRequest{
				CheckoutToken: e.World.Checkout(t, owner, "op_2", total, currency, payments.Name), PaymentMethodId: method, Amount: amount,
			}))
			return err
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"no transaction token", func() error {
			_, err := e.payments.ListPaymentMethods(t.Context(), connect.NewRequest(&paymentsv1.ListPaymentMethodsRequest{}))
			return err
		}, connect.CodeUnauthenticated},
		{"add method without admin", add("shop", cardApprove, month, year), connect.CodePermissionDenied},
		{"bad check digit", add("admin", "4242424242424241", month, year), connect.CodeInvalidArgument},
		{"card number with spaces", add("admin", "4242 4242 4242 4242", month, year), connect.CodeInvalidArgument},
		{"card number too short", add("admin", "42424242", month, year), connect.CodeInvalidArgument},
		{"expired card", add("admin", cardApprove, 1, int32(time.Now().Year()-1)), connect.CodeInvalidArgument},
		{"declining card", confirm("usr_alice", "usr_alice", 3000, "EUR", declining.GetId(), eur(3000)), connect.CodeFailedPrecondition},
		{"over the checkout total", confirm("usr_alice", "usr_alice", 3000, "EUR", visa.GetId(), eur(3001)), connect.CodeFailedPrecondition},
		{"wrong currency", confirm("usr_alice", "usr_alice", 3000, "EUR", visa.GetId(), &typev1.Money{AmountMinor: 3000, Currency: "USD"}), connect.CodeInvalidArgument},
		{"zero amount", confirm("usr_alice", "usr_alice", 3000, "EUR", visa.GetId(), eur(0)), connect.CodeInvalidArgument},
		{"negative amount", confirm("usr_alice", "usr_alice", 3000, "EUR", visa.GetId(), eur(-1)), connect.CodeInvalidArgument},
		{"no amount", confirm("usr_alice", "usr_alice", 3000, "EUR", visa.GetId(), nil), connect.CodeInvalidArgument},
		{"someone else's payment method", confirm("usr_alice", "usr_alice", 3000, "EUR", bobs.GetId(), eur(3000)), connect.CodePermissionDenied},
		{"unknown payment method", confirm("usr_alice", "usr_alice", 3000, "EUR", "pm_nope", eur(3000)), connect.CodeNotFound},
		{"someone else's checkout", confirm("usr_bob", "usr_alice", 3000, "EUR", bobs.GetId(), eur(3000)), connect.CodePermissionDenied},
		{"tampered token", func() error { _, err := e.Exercise(t, tampered, "ord_1"); return err }, connect.CodeInvalidArgument},
		{"foreign token", func() error { _, err := e.Exercise(t, foreign, "ord_1"); return err }, connect.CodeInvalidArgument},
		{"expired token", func() error { _, err := e.Exercise(t, expired, "ord_1"); return err }, connect.CodeFailedPrecondition},
		{"exercise without workload token", func() error {
			return e.ExerciseAsShopper(t, good.GetConfirmationToken(), "ord_1")
		}, connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); connect.CodeOf(err) != tc.want {
				t.Fatalf("error = %v, want code %v", err, tc.want)
			}
		})
	}
	if n := len(e.methods(t, "usr_alice").GetPaymentMethods()); n != 2 {
		t.Fatalf("after refused requests alice has %d payment methods, want 2", n)
	}
	if n := e.holds(t); n != 1 {
		t.Fatalf("after refused requests the processor has %d holds, want 1", n)
	}
	if s := e.hold(t, good.GetAuthorizationId()); s != "authorized" {
		t.Fatalf("after refused requests hold = %s, want authorized", s)
	}
	if _, err := e.Exercise(t, good.GetConfirmationToken(), "ord_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exercise(t, good.GetConfirmationToken(), "ord_2"); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("replayed jti: %v, want already_exists", err)
	}
}

// TestFailingCapture: the hold is placed, every capture is refused and
// records nothing, and compensation voids the hold so it can never be
// captured.
func TestFailingCapture(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t), sqldbtest.SQLite(t))
	pm := e.add(t, "usr_alice", cardFailCapture)
	conf, err := e.confirm(t.Context(), t, "usr_alice", "op_1", 3000, "EUR", pm.GetId(), eur(3000))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.Exercise(t, conf.GetConfirmationToken(), "ord_1"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("Exercise: %v, want failed_precondition", err)
		}
	}
	if s := e.hold(t, conf.GetAuthorizationId()); s != "authorized" {
		t.Fatalf("after failed captures hold = %s, want authorized", s)
	}
	x, err := e.Compensate(t, conf.GetConfirmationToken(), "ord_1")
	if err != nil {
		t.Fatal(err)
	}
	if x.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_COMPENSATED || x.GetAppliedAt() != nil || x.GetReference() != "" {
		t.Fatalf("Compensate = %v, want compensated, never applied", x)
	}
	if s := e.hold(t, conf.GetAuthorizationId()); s != "voided" {
		t.Fatalf("after compensation hold = %s, want voided", s)
	}
	if _, err := e.Exercise(t, conf.GetConfirmationToken(), "ord_1"); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("Exercise after void: %v, want failed_precondition", err)
	}
}

// TestProcessorTimeout: a processor that does not answer becomes Unavailable
// when the request's deadline passes, on both protocols, and leaves no hold.
//
// The request carries its deadline to the server, which bounds the
// processor's wait by it, but the client does not hang up at that deadline
// (sentDeadline): what is tested is the server's answer, whenever it comes,
// not whether a busy machine delivers it within the reply reserve. The
// deadline is doubled while it passes before the processor is even called
// (DeadlineExceeded): how long that takes depends on the machine, the
// outcome once the processor waits does not.
func TestProcessorTimeout(t *testing.T) {
	t.Parallel()
	for name, opts := range protocols {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, sqldbtest.SQLite(t), sqldbtest.SQLite(t), opts...)
			pm := e.add(t, "usr_alice", cardTimeout)
			for deadline := 300 * time.Millisecond; ; deadline *= 2 {
				ctx := sentDeadline{t.Context(), time.Now().Add(deadline)}
				_, err := e.confirm(ctx, t, "usr_alice", "op_1", 3000, "EUR", pm.GetId(), eur(3000))
				if connect.CodeOf(err) == connect.CodeDeadlineExceeded {
					t.Logf("the deadline of %v passed before the processor was called; again with twice that", deadline)
					continue
				}
				if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("ConfirmPayment: %v, want unavailable", err)
				}
				break
			}
			if n := e.holds(t); n != 0 {
				t.Fatalf("holds = %d, want 0", n)
			}
		})
	}
}

// sentDeadline is a context whose deadline the client sends with the
// request (Connect-Timeout-Ms, grpc-timeout) but which never ends at it, so
// that the client waits for the server's answer however late it comes.
type sentDeadline struct {
	context.Context
	deadline time.Time
}

func (c sentDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// TestNoCardNumberLeaves adds every test card and checks that no full card
// number appears in any response (as JSON) or in the service's logs.
func TestNoCardNumberLeaves(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t), sqldbtest.SQLite(t))
	cards := []string{cardApprove, cardDecline, cardFailCapture, cardTimeout, cardMastercard}
	var seen []proto.Message
	for _, number := range cards {
		seen = append(seen, e.add(t, "usr_alice", number))
	}
	list := e.methods(t, "usr_alice")
	if n := len(list.GetPaymentMethods()); n != len(cards) {
		t.Fatalf("ListPaymentMethods returned %d methods, want %d", n, len(cards))
	}
	conf, err := e.confirm(t.Context(), t, "usr_alice", "op_1", 3000, "EUR", list.GetPaymentMethods()[0].GetId(), eur(100))
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, list, conf)
	for _, m := range seen {
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, number := range cards {
			if strings.Contains(string(js), number) {
				t.Errorf("card number %s in response %s", number[len(number)-4:], js)
			}
		}
	}
	for _, pm := range list.GetPaymentMethods() {
		if len(pm.GetLast4()) != 4 || pm.GetBrand() == "" {
			t.Errorf("payment method %v: want brand and last four digits", pm)
		}
	}
	// A refused request must not log the number either.
	if _, err := e.payments.AddPaymentMethod(t.Context(), capabilitytest.Request(e.World.As(t, "usr_alice", "shop"), &paymentsv1.AddPaymentMethodRequest{
		UserId: "usr_alice", CardNumber: cardApprove, ExpiryMonth: 12, ExpiryYear: 2099,
	})); err == nil {
		t.Fatal("AddPaymentMethod without admin succeeded")
	}
	logs := e.logs.String()
	for _, number := range cards {
		if strings.Contains(logs, number) {
			t.Errorf("card number ending %s in the logs", number[len(number)-4:])
		}
	}
}
