package app_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/app"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var (
	admin = app.Caller{UserID: "usr_admin", Admin: true}
	alice = app.Caller{UserID: "usr_alice"}
	bob   = app.Caller{UserID: "usr_bob"}
)

func eur(minor int64) money.Money { return money.Money{AmountMinor: minor, Currency: "EUR"} }

// fakeIssuer signs nothing: a token is "tok." + jti, and verify plays the
// ports by turning it back into the verified claims.
type fakeIssuer struct {
	mu     sync.Mutex
	drafts map[string]capability.Draft
}

func (f *fakeIssuer) IssueConfirmation(_ context.Context, d capability.Draft) (capability.Issued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	jti := ids.New("")
	d.Constraints = maps.Clone(d.Constraints)
	f.drafts[jti] = d
	return capability.Issued{Token: "tok." + jti, JTI: jti, ExpiresAt: t0.Add(2 * time.Minute)}, nil
}

func (f *fakeIssuer) verify(t *testing.T, token string) capability.Token {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	jti := strings.TrimPrefix(token, "tok.")
	d, ok := f.drafts[jti]
	if !ok {
		t.Fatalf("token %q was not issued", token)
	}
	return capability.Token{
		JTI: jti, Issuer: "payments", Subject: d.Subject, CheckoutID: d.CheckoutID, Capabilities: []string{d.Capability},
		Constraints: maps.Clone(d.Constraints), Settlement: d.Settlement, ExpiresAt: t0.Add(2 * time.Minute),
	}
}

// fakeSealer binds a token to its record id in the clear; failNext makes the
// next Seal fail, as a crash between the hold and its record would.
type fakeSealer struct {
	mu       sync.Mutex
	failNext bool
}

func (f *fakeSealer) Seal(id, plaintext string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext {
		f.failNext = false
		return "", errors.New("sealer down")
	}
	return id + "|" + plaintext, nil
}

func (f *fakeSealer) Open(id, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, id+"|")
	if !ok {
		return "", errors.New("sealed for another record")
	}
	return rest, nil
}

type fixture struct {
	svc    *app.Service
	repo   *adapters.Store
	issuer *fakeIssuer
	sealer *fakeSealer
	sim    *adapters.SimProcessor
	db     *sqldb.DB // the store's
	simDB  *sqldb.DB // the simulated processor's
}

func newFixture(t *testing.T, db *sqldb.DB) *fixture {
	t.Helper()
	repo, err := adapters.NewStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	simDB := sqldbtest.SQLite(t)
	if db.Dialect() == sqldb.Postgres {
		simDB = sqldbtest.Postgres(t)
	}
	sim, err := adapters.NewSimProcessor(t.Context(), simDB)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{repo: repo, issuer: &fakeIssuer{drafts: map[string]capability.Draft{}}, sealer: &fakeSealer{}, sim: sim, db: db, simDB: simDB}
	f.svc = app.New(repo, sim, f.issuer, f.sealer, func() time.Time { return t0 })
	return f
}

func (f *fixture) addCard(t *testing.T, user, pan string) domain.PaymentMethod {
	t.Helper()
	m, err := f.svc.AddPaymentMethod(t.Context(), admin, app.NewPaymentMethod{
		UserID: user, CardNumber: pan, ExpiryMonth: 12, ExpiryYear: 2030, Label: "card",
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) count(t *testing.T, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// holds counts the processor's holds on a card, in any state.
func (f *fixture) holds(t *testing.T, m domain.PaymentMethod) int {
	return f.count(t, f.simDB, `SELECT COUNT(*) FROM sim_holds WHERE card_ref = $1`, m.ProcessorRef)
}

func (f *fixture) holdState(t *testing.T, auth string) string {
	t.Helper()
	var state string
	if err := f.simDB.SQL().QueryRowContext(t.Context(), `SELECT state FROM sim_holds WHERE id = $1`, auth).Scan(&state); err != nil {
		t.Fatal(err)
	}
	return state
}

func checkout(user string, total int64) domain.Checkout {
	return domain.Checkout{ID: ids.New("op"), UserID: user, Total: eur(total)}
}

// assertNoCardNumber fails if any value of any row of any table in db
// contains one of the card numbers.
func assertNoCardNumber(t *testing.T, db *sqldb.DB, pans ...string) {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect() == sqldb.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.SQL().QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		rows, err := db.SQL().QueryContext(t.Context(), `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				s := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					s = string(b)
				}
				for _, pan := range pans {
					if strings.Contains(s, pan) {
						t.Errorf("%s.%s holds a card number", table, cols[i])
					}
				}
			}
		}
		rows.Close()
	}
}

func TestPayments(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		f := newFixture(t, db)
		ctx := t.Context()

		t.Run("confirm, exercise, compensate", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardApprove)
			if m.Brand != domain.BrandVisa || m.Last4 != "4242" || m.ProcessorRef == "" || !strings.HasPrefix(m.ID, "pm_") {
				t.Fatalf("added %+v", m)
			}
			co := checkout(alice.UserID, 5000)
			conf, err := f.svc.ConfirmPayment(ctx, alice, co, m.ID, eur(3500), "confirm-1")
			if err != nil {
				t.Fatal(err)
			}
			if conf.Amount != eur(3500) || conf.Method != m || conf.AuthorizationID == "" || !conf.ExpiresAt.Equal(t0.Add(2*time.Minute)) {
				t.Fatalf("ConfirmPayment = %+v", conf)
			}
			tok := f.issuer.verify(t, conf.Token)
			if !tok.Grants("payments:capture") || tok.Settlement != eur(3500) || tok.Subject != alice.UserID ||
				tok.CheckoutID != co.ID || tok.Constraints["authorization_id"] != conf.AuthorizationID || len(tok.Constraints["amount_sha256"]) != 64 {
				t.Fatalf("token claims %+v", tok)
			}
			if got := f.holdState(t, conf.AuthorizationID); got != "authorized" {
				t.Fatalf("hold is %s, want authorized", got)
			}

			x, err := f.svc.Exercise(ctx, tok, "ord_1")
			if err != nil || x.State != domain.ExerciseApplied || x.CaptureID == "" || x.Amount != eur(3500) {
				t.Fatalf("Exercise = %+v, %v", x, err)
			}
			if again, err := f.svc.Exercise(ctx, tok, "ord_1"); err != nil || again != x {
				t.Fatalf("Exercise retry = %+v, %v; want %+v", again, err, x)
			}
			if _, err := f.svc.Exercise(ctx, tok, "ord_2"); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("Exercise for another order: %v, want ErrAlreadyExercised", err)
			}
			if got := f.holdState(t, conf.AuthorizationID); got != "captured" {
				t.Fatalf("hold is %s, want captured", got)
			}

			tok.ExpiresAt = t0.Add(-time.Hour) // compensation outlives the token
			for range 2 {
				x, err = f.svc.Compensate(ctx, tok, "ord_1", "stock ran out")
				if err != nil || x.State != domain.ExerciseCompensated || x.RefundID == "" || x.CaptureID == "" {
					t.Fatalf("Compensate = %+v, %v", x, err)
				}
			}
			if got := f.holdState(t, conf.AuthorizationID); got != "refunded" {
				t.Fatalf("hold is %s, want refunded", got)
			}
			if n := f.holds(t, m); n != 1 {
				t.Fatalf("%d holds on the card, want 1", n)
			}
			assertNoCardNumber(t, f.db, adapters.SimCardApprove)
			assertNoCardNumber(t, f.simDB, adapters.SimCardApprove)
		})

		t.Run("idempotent retries place no second hold", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardApprove)
			co := checkout(alice.UserID, 5000)
			first, err := f.svc.ConfirmPayment(ctx, alice, co, m.ID, eur(2000), "retry-1")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					again, err := f.svc.ConfirmPayment(context.Background(), alice, co, m.ID, eur(2000), "retry-1")
					if err != nil || again.Token != first.Token || again.AuthorizationID != first.AuthorizationID {
						t.Errorf("retry = %+v, %v; want %+v", again, err, first)
					}
				})
			}
			wg.Wait()
			if _, err := f.svc.ConfirmPayment(ctx, alice, co, m.ID, eur(2001), "retry-1"); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other amount: %v, want ErrIdempotencyConflict", err)
			}
			if n := f.holds(t, m); n != 1 {
				t.Fatalf("%d holds, want 1", n)
			}

			// Concurrent first attempts race to record; all get one hold.
			co2 := checkout(alice.UserID, 5000)
			tokens := make([]string, 10)
			for i := range tokens {
				wg.Go(func() {
					c, err := f.svc.ConfirmPayment(context.Background(), alice, co2, m.ID, eur(100), "race-1")
					if err != nil {
						t.Errorf("racing confirm: %v", err)
					}
					tokens[i] = c.Token
				})
			}
			wg.Wait()
			for _, tok := range tokens {
				if tok != tokens[0] {
					t.Fatalf("racing confirms returned different tokens: %q", tokens)
				}
			}
			if n := f.holds(t, m); n != 2 {
				t.Fatalf("%d holds, want 2", n)
			}

			// A crash after the hold and before its record: the retry finds
			// the same hold.
			f.sealer.mu.Lock()
			f.sealer.failNext = true
			f.sealer.mu.Unlock()
			if _, err := f.svc.ConfirmPayment(ctx, alice, co, m.ID, eur(300), "crash-1"); err == nil {
				t.Fatal("confirm with a failing sealer succeeded")
			}
			if n := f.holds(t, m); n != 3 {
				t.Fatalf("%d holds after the crashed confirm, want 3", n)
			}
			if _, err := f.svc.ConfirmPayment(ctx, alice, co, m.ID, eur(300), "crash-1"); err != nil {
				t.Fatal(err)
			}
			if n := f.holds(t, m); n != 3 {
				t.Fatalf("%d holds after the retry, want still 3", n)
			}
		})

		t.Run("declining card", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardDecline)
			_, err := f.svc.ConfirmPayment(ctx, alice, checkout(alice.UserID, 100), m.ID, eur(100), "decline-1")
			if !errors.Is(err, domain.ErrDeclined) {
				t.Fatalf("ConfirmPayment: %v, want ErrDeclined", err)
			}
			if _, err := f.repo.ConfirmationByKey(ctx, alice.UserID, "decline-1"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("a declined payment left a confirmation: %v", err)
			}
			if n := f.holds(t, m); n != 0 {
				t.Fatalf("%d holds, want 0", n)
			}
		})

		t.Run("failing capture captures and records nothing", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardFailCapture)
			conf, err := f.svc.ConfirmPayment(ctx, alice, checkout(alice.UserID, 100), m.ID, eur(100), "")
			if err != nil {
				t.Fatal(err)
			}
			tok := f.issuer.verify(t, conf.Token)
			if _, err := f.svc.Exercise(ctx, tok, "ord_f"); !errors.Is(err, domain.ErrCaptureFailed) {
				t.Fatalf("Exercise: %v, want ErrCaptureFailed", err)
			}
			if got := f.holdState(t, conf.AuthorizationID); got != "authorized" {
				t.Fatalf("hold is %s, want authorized", got)
			}
			if n := f.count(t, f.db, `SELECT COUNT(*) FROM exercises WHERE jti = $1`, tok.JTI); n != 0 {
				t.Fatalf("the failed capture left %d exercise records", n)
			}
			x, err := f.svc.Compensate(ctx, tok, "ord_f", "capture failed")
			if err != nil || !x.AppliedAt.IsZero() || f.holdState(t, conf.AuthorizationID) != "voided" {
				t.Fatalf("Compensate = %+v, %v; want the hold voided", x, err)
			}
			if _, err := f.svc.Exercise(ctx, tok, "ord_f"); !errors.Is(err, domain.ErrVoided) {
				t.Fatalf("Exercise after the void: %v, want ErrVoided", err)
			}
		})

		t.Run("processor timeout", func(t *testing.T) {
			// The simulation's own bound ends the wait: a deadline on ctx
			// would also cover the reads before the processor is called,
			// which a busy machine may not finish in time.
			f.sim.SetTimeout(time.Millisecond)
			defer f.sim.SetTimeout(adapters.SimTimeout)
			m := f.addCard(t, alice.UserID, adapters.SimCardTimeout)
			_, err := f.svc.ConfirmPayment(ctx, alice, checkout(alice.UserID, 100), m.ID, eur(100), "timeout-1")
			if !errors.Is(err, domain.ErrProcessorUnavailable) {
				t.Fatalf("ConfirmPayment: %v, want ErrProcessorUnavailable", err)
			}
			if n := f.holds(t, m); n != 0 {
				t.Fatalf("%d holds, want 0", n)
			}
		})

		t.Run("someone else's method or checkout", func(t *testing.T) {
			alices := f.addCard(t, alice.UserID, adapters.SimCardApprove)
			tests := []struct {
				name     string
				caller   app.Caller
				checkout domain.Checkout
				methodID string
				wantErr  error
			}{
				{"another user's method", bob, checkout(bob.UserID, 100), alices.ID, domain.ErrPermissionDenied},
				{"another user's checkout", alice, checkout(bob.UserID, 100), alices.ID, domain.ErrPermissionDenied},
				{"unknown method", alice, checkout(alice.UserID, 100), "pm_unknown", domain.ErrNotFound},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := f.svc.ConfirmPayment(ctx, tt.caller, tt.checkout, tt.methodID, eur(100), ""); !errors.Is(err, tt.wantErr) {
						t.Fatalf("ConfirmPayment: %v, want %v", err, tt.wantErr)
					}
				})
			}
			if n := f.holds(t, alices); n != 0 {
				t.Fatalf("%d holds, want 0", n)
			}
		})

		t.Run("amount checks", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardApprove)
			tests := []struct {
				name    string
				amount  money.Money
				wantErr error
			}{
				{"over the total", eur(1001), domain.ErrExceedsTotal},
				{"wrong currency", money.Money{AmountMinor: 100, Currency: "USD"}, domain.ErrInvalidArgument},
				{"zero", eur(0), domain.ErrInvalidArgument},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := f.svc.ConfirmPayment(ctx, alice, checkout(alice.UserID, 1000), m.ID, tt.amount, ""); !errors.Is(err, tt.wantErr) {
						t.Fatalf("ConfirmPayment(%v): %v, want %v", tt.amount, err, tt.wantErr)
					}
				})
			}
			if n := f.holds(t, m); n != 0 {
				t.Fatalf("%d holds, want 0", n)
			}
		})

		t.Run("a card that expired since it was added", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardApprove) // expires 12/2030
			later := app.New(f.repo, f.sim, f.issuer, f.sealer, func() time.Time { return time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) })
			if _, err := later.ConfirmPayment(ctx, alice, checkout(alice.UserID, 100), m.ID, eur(100), ""); !errors.Is(err, domain.ErrCardExpired) {
				t.Fatalf("ConfirmPayment: %v, want ErrCardExpired", err)
			}
		})

		t.Run("add and list payment methods", func(t *testing.T) {
			const user = "usr_carol"
			in := app.NewPaymentMethod{UserID: user, CardNumber: "5555555555554444", ExpiryMonth: 1, ExpiryYear: 2027, Label: "Work", IdempotencyKey: "add-1"}
			first, err := f.svc.AddPaymentMethod(ctx, admin, in)
			if err != nil {
				t.Fatal(err)
			}
			cards := f.count(t, f.simDB, `SELECT COUNT(*) FROM sim_cards`)
			if again, err := f.svc.AddPaymentMethod(ctx, admin, in); err != nil || again != first {
				t.Fatalf("retry = %+v, %v; want %+v", again, err, first)
			}
			if n := f.count(t, f.simDB, `SELECT COUNT(*) FROM sim_cards`); n != cards {
				t.Fatalf("the retry tokenized the card again (%d cards, then %d)", cards, n)
			}
			other := in
			other.CardNumber = adapters.SimCardApprove
			if _, err := f.svc.AddPaymentMethod(ctx, admin, other); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other card: %v, want ErrIdempotencyConflict", err)
			}
			second := f.addCard(t, user, "378282246310005")
			list, err := f.svc.ListPaymentMethods(ctx, app.Caller{UserID: user})
			if err != nil || len(list) != 2 || list[0] != second || list[1] != first {
				t.Fatalf("ListPaymentMethods = %+v, %v; want newest first", list, err)
			}
			if list, err := f.svc.ListPaymentMethods(ctx, bob); err != nil || len(list) != 0 {
				t.Fatalf("bob sees %+v, %v", list, err)
			}

			const pan = "4242424242424241" // bad check digit
			tests := []struct {
				name    string
				caller  app.Caller
				edit    func(*app.NewPaymentMethod)
				wantErr error
			}{
				{"not an admin", alice, func(*app.NewPaymentMethod) {}, domain.ErrPermissionDenied},
				{"no user", admin, func(n *app.NewPaymentMethod) { n.UserID = "" }, domain.ErrInvalidArgument},
				{"bad Luhn", admin, func(n *app.NewPaymentMethod) { n.CardNumber = pan }, domain.ErrInvalidArgument},
				{"too short", admin, func(n *app.NewPaymentMethod) { n.CardNumber = "42424242424" }, domain.ErrInvalidArgument},
				{"expired", admin, func(n *app.NewPaymentMethod) { n.ExpiryYear, n.ExpiryMonth = 2026, 10 }, domain.ErrInvalidArgument},
				{"long label", admin, func(n *app.NewPaymentMethod) { n.Label = strings.Repeat("x", 41) }, domain.ErrInvalidArgument},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					in := app.NewPaymentMethod{UserID: user, CardNumber: "6011111111111117", ExpiryMonth: 11, ExpiryYear: 2026}
					tt.edit(&in)
					_, err := f.svc.AddPaymentMethod(ctx, tt.caller, in)
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("AddPaymentMethod: %v, want %v", err, tt.wantErr)
					}
					if strings.Contains(err.Error(), in.CardNumber) {
						t.Fatalf("error %q quotes the card number", err)
					}
				})
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				if s := fmt.Sprintf(verb, in); strings.Contains(s, in.CardNumber) {
					t.Fatalf("%s prints the card number: %s", verb, s)
				}
			}
		})

		t.Run("tokens that do not match their record", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardApprove)
			conf, err := f.svc.ConfirmPayment(ctx, alice, checkout(alice.UserID, 900), m.ID, eur(900), "")
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name string
				edit func(*capability.Token)
			}{
				{"another capability", func(tok *capability.Token) { tok.Capabilities = []string{"points:spend"} }},
				{"an extra capability", func(tok *capability.Token) { tok.Capabilities = append(tok.Capabilities, "payments:refund") }},
				{"another subject", func(tok *capability.Token) { tok.Subject = bob.UserID }},
				{"another checkout", func(tok *capability.Token) { tok.CheckoutID = "op_other" }},
				{"another settlement", func(tok *capability.Token) { tok.Settlement = eur(1) }},
				{"another authorization", func(tok *capability.Token) { tok.Constraints["authorization_id"] = "auth_other" }},
				{"another amount hash", func(tok *capability.Token) { tok.Constraints["amount_sha256"] = strings.Repeat("0", 64) }},
				{"an extra constraint", func(tok *capability.Token) { tok.Constraints["x"] = "y" }},
				{"an unknown jti", func(tok *capability.Token) { tok.JTI = ids.New("") }},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tok := f.issuer.verify(t, conf.Token)
					tt.edit(&tok)
					if _, err := f.svc.Exercise(ctx, tok, "ord_m"); !errors.Is(err, domain.ErrMismatch) {
						t.Fatalf("Exercise: %v, want ErrMismatch", err)
					}
					if _, err := f.svc.Compensate(ctx, tok, "ord_m", ""); !errors.Is(err, domain.ErrMismatch) {
						t.Fatalf("Compensate: %v, want ErrMismatch", err)
					}
				})
			}
			tok := f.issuer.verify(t, conf.Token)
			if _, err := f.svc.Exercise(ctx, tok, ""); !errors.Is(err, domain.ErrInvalidArgument) {
				t.Fatalf("Exercise without an order: %v", err)
			}
			if _, err := f.svc.Compensate(ctx, tok, "ord_m", strings.Repeat("x", 201)); !errors.Is(err, domain.ErrInvalidArgument) {
				t.Fatalf("Compensate with a long reason: %v", err)
			}
			if got := f.holdState(t, conf.AuthorizationID); got != "authorized" {
				t.Fatalf("hold is %s after refused calls, want authorized", got)
			}
		})

		t.Run("compensating a capture whose record was lost refunds it", func(t *testing.T) {
			m := f.addCard(t, alice.UserID, adapters.SimCardApprove)
			conf, err := f.svc.ConfirmPayment(ctx, alice, checkout(alice.UserID, 600), m.ID, eur(600), "")
			if err != nil {
				t.Fatal(err)
			}
			// An Exercise captured, then crashed before its commit.
			if _, err := f.sim.Capture(ctx, conf.AuthorizationID); err != nil {
				t.Fatal(err)
			}
			x, err := f.svc.Compensate(ctx, f.issuer.verify(t, conf.Token), "ord_lost", "saga gave up")
			if err != nil || !x.AppliedAt.IsZero() || x.RefundID == "" {
				t.Fatalf("Compensate = %+v, %v; want a refund", x, err)
			}
			if got := f.holdState(t, conf.AuthorizationID); got != "refunded" {
				t.Fatalf("hold is %s, want refunded", got)
			}
		})
	})
}
