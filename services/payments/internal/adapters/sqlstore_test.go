package adapters_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func eur(minor int64) money.Money { return money.Money{AmountMinor: minor, Currency: "EUR"} }

func newStore(t *testing.T, db *sqldb.DB) *adapters.Store {
	t.Helper()
	s, err := adapters.NewStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newSim opens the simulated processor on a database of its own, of the same
// dialect as the store's, as NewSimProcessor requires.
func newSim(t *testing.T, storeDB *sqldb.DB) (*adapters.SimProcessor, *sqldb.DB) {
	t.Helper()
	var db *sqldb.DB
	if storeDB.Dialect() == sqldb.Postgres {
		db = sqldbtest.Postgres(t)
	} else {
		db = sqldbtest.SQLite(t)
	}
	p, err := adapters.NewSimProcessor(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return p, db
}

// addMethod does what AddPaymentMethod does with a card: the number goes to
// the processor, the rest to the store.
func addMethod(t *testing.T, s *adapters.Store, sim *adapters.SimProcessor, user, pan, key string) domain.PaymentMethod {
	t.Helper()
	card, err := domain.ParseCard(pan)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := sim.Tokenize(t.Context(), card, "")
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.AddPaymentMethod(t.Context(), domain.PaymentMethod{
		UserID: user, Brand: card.Brand, Last4: card.Last4, ExpiryMonth: 12, ExpiryYear: 2030,
		ProcessorRef: ref, IdempotencyKey: key, CreatedAt: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// confirm places a hold on m and stores its confirmation.
func confirm(t *testing.T, s *adapters.Store, sim *adapters.SimProcessor, m domain.PaymentMethod, amount money.Money) domain.Confirmation {
	t.Helper()
	auth, err := sim.Authorize(t.Context(), m.ProcessorRef, amount, ids.New("key"))
	if err != nil {
		t.Fatal(err)
	}
	c, created, err := s.SaveConfirmation(t.Context(), domain.Confirmation{
		UserID: m.UserID, CheckoutID: ids.New("op"), MethodID: m.ID, Amount: amount, AuthorizationID: auth,
		Kept: capability.Kept{JTI: ids.New(""), SealedToken: "sealed", ExpiresAt: t0.Add(2 * time.Minute), CreatedAt: t0},
	})
	if err != nil || !created {
		t.Fatalf("SaveConfirmation: created=%v err=%v", created, err)
	}
	return c
}

// counting wraps the simulation's capture and release so tests can see how
// often the store called them.
type counting struct {
	sim               *adapters.SimProcessor
	captures, release atomic.Int32
}

func (c *counting) capture(ctx context.Context, conf domain.Confirmation) (string, error) {
	c.captures.Add(1)
	return c.sim.Capture(ctx, conf.AuthorizationID)
}

func (c *counting) releaseFunc(ctx context.Context, conf domain.Confirmation, x domain.Exercise) (string, error) {
	c.release.Add(1)
	if x.AppliedAt.IsZero() {
		return "", c.sim.Void(ctx, conf.AuthorizationID)
	}
	return c.sim.Refund(ctx, conf.AuthorizationID)
}

func holdState(t *testing.T, simDB *sqldb.DB, auth string) string {
	t.Helper()
	var state string
	if err := simDB.SQL().QueryRowContext(t.Context(), `SELECT state FROM sim_holds WHERE id = $1`, auth).Scan(&state); err != nil {
		t.Fatal(err)
	}
	return state
}

// assertNoCardNumber reads every column of every row of every table in db
// and fails if any value contains a card number, or all of it but the last
// four digits.
func assertNoCardNumber(t *testing.T, db *sqldb.DB, pans ...string) {
	t.Helper()
	ctx := t.Context()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect() == sqldb.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.SQL().QueryContext(ctx, q)
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
	cells := 0
	for _, table := range tables {
		rows, err := db.SQL().QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				cells++
				s := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					s = string(b)
				}
				for _, pan := range pans {
					if strings.Contains(s, pan) || strings.Contains(s, pan[:len(pan)-4]) {
						t.Errorf("%s.%s holds a card number", table, cols[i])
					}
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if cells == 0 {
		t.Fatalf("scanned no data in %d tables", len(tables))
	}
}

// TestStoreContract is the one suite every Payments store passes, run against
// SQLite and PostgreSQL, with the simulated processor behind it.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		sim, simDB := newSim(t, db)
		ctx := t.Context()
		pans := []string{adapters.SimCardApprove, "5555555555554444", "378282246310005", adapters.SimCardFailCapture}

		t.Run("payment methods: add, idempotency, list newest first", func(t *testing.T) {
			var added []domain.PaymentMethod
			for _, pan := range pans[:3] {
				added = append(added, addMethod(t, s, sim, "usr_m", pan, ""))
			}
			other := addMethod(t, s, sim, "usr_other", adapters.SimCardApprove, "")
			list, err := s.PaymentMethods(ctx, "usr_m")
			if err != nil || len(list) != 3 {
				t.Fatalf("PaymentMethods = %d methods, %v; want 3", len(list), err)
			}
			for i, m := range list {
				if want := added[len(added)-1-i]; m != want {
					t.Fatalf("list[%d] = %+v, want %+v (newest first)", i, m, want)
				}
			}
			if list[2].Brand != domain.BrandVisa || list[2].Last4 != "4242" || list[0].Brand != domain.BrandAmex {
				t.Fatalf("brands and last4 not kept: %+v", list)
			}
			if got, err := s.PaymentMethod(ctx, other.ID); err != nil || got != other {
				t.Fatalf("PaymentMethod = %+v, %v; want %+v", got, err, other)
			}

			first := addMethod(t, s, sim, "usr_k", adapters.SimCardApprove, "add-1")
			again := addMethod(t, s, sim, "usr_k", adapters.SimCardApprove, "add-1")
			if again != first {
				t.Fatalf("retry = %+v, want the first %+v", again, first)
			}
			if got, err := s.PaymentMethodByKey(ctx, "usr_k", "add-1"); err != nil || got != first {
				t.Fatalf("PaymentMethodByKey = %+v, %v", got, err)
			}
			conflicting := first
			conflicting.Last4 = "4444"
			if _, _, err := s.AddPaymentMethod(ctx, conflicting); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other card: %v, want ErrIdempotencyConflict", err)
			}
			if list, _ := s.PaymentMethods(ctx, "usr_k"); len(list) != 1 {
				t.Fatalf("usr_k has %d methods, want 1", len(list))
			}
			if _, err := s.PaymentMethod(ctx, "pm_nope"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown method: %v", err)
			}
			if _, err := s.PaymentMethodByKey(ctx, "usr_k", ""); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("empty key: %v", err)
			}
			if list, err := s.PaymentMethods(ctx, "usr_nobody"); err != nil || len(list) != 0 {
				t.Fatalf("unknown user: %v, %v", list, err)
			}
		})

		t.Run("confirmation idempotency", func(t *testing.T) {
			m := addMethod(t, s, sim, "usr_c", adapters.SimCardApprove, "")
			c := domain.Confirmation{
				UserID: "usr_c", CheckoutID: "op_1", MethodID: m.ID, Amount: eur(10), AuthorizationID: "auth_1", IdempotencyKey: "ck",
				Kept: capability.Kept{JTI: ids.New(""), SealedToken: "s1", ExpiresAt: t0, CreatedAt: t0},
			}
			if _, created, err := s.SaveConfirmation(ctx, c); err != nil || !created {
				t.Fatalf("first save: %v %v", created, err)
			}
			c2 := c
			c2.JTI, c2.SealedToken, c2.AuthorizationID = ids.New(""), "s2", "auth_2"
			got, created, err := s.SaveConfirmation(ctx, c2)
			if err != nil || created || got != c {
				t.Fatalf("retry save = %+v %v %v; want the first", got, created, err)
			}
			c2.Amount = eur(11)
			if _, _, err := s.SaveConfirmation(ctx, c2); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("conflicting save: %v", err)
			}
			if got, err := s.Confirmation(ctx, c.JTI); err != nil || got != c {
				t.Fatalf("Confirmation = %+v, %v", got, err)
			}
			if _, err := s.ConfirmationByKey(ctx, "usr_c", "other"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown key: %v", err)
			}
			if _, err := s.Confirmation(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
		})

		t.Run("exercise, retry, reuse, compensate with a refund", func(t *testing.T) {
			p := &counting{sim: sim}
			c := confirm(t, s, sim, addMethod(t, s, sim, "usr_x", adapters.SimCardApprove, ""), eur(3000))
			x, err := s.Exercise(ctx, c.JTI, "ord_1", t0, p.capture)
			if err != nil || x.State != domain.ExerciseApplied || x.CaptureID == "" || x.Amount != eur(3000) || !x.AppliedAt.Equal(t0) {
				t.Fatalf("Exercise = %+v, %v", x, err)
			}
			if got := holdState(t, simDB, c.AuthorizationID); got != "captured" {
				t.Fatalf("hold is %s, want captured", got)
			}
			again, err := s.Exercise(ctx, c.JTI, "ord_1", t0.Add(time.Second), p.capture)
			if err != nil || again != x {
				t.Fatalf("retry = %+v, %v; want the stored result %+v", again, err, x)
			}
			if _, err := s.Exercise(ctx, c.JTI, "ord_2", t0, p.capture); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("other order: %v, want ErrAlreadyExercised", err)
			}
			if _, err := s.Compensate(ctx, c.JTI, "ord_2", "", t0, p.releaseFunc); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("compensate for another order: %v", err)
			}
			if n := p.captures.Load(); n != 1 {
				t.Fatalf("capture called %d times, want 1", n)
			}
			var refund string
			for range 2 { // compensation is idempotent
				x, err = s.Compensate(ctx, c.JTI, "ord_1", "saga failed", t0.Add(time.Minute), p.releaseFunc)
				if err != nil || x.State != domain.ExerciseCompensated || x.RefundID == "" || x.Reason != "saga failed" ||
					x.AppliedAt.IsZero() || !x.CompensatedAt.Equal(t0.Add(time.Minute)) {
					t.Fatalf("Compensate = %+v, %v", x, err)
				}
				if refund != "" && x.RefundID != refund {
					t.Fatalf("second compensation refund %s, first %s", x.RefundID, refund)
				}
				refund = x.RefundID
			}
			if n := p.release.Load(); n != 1 {
				t.Fatalf("release called %d times, want 1", n)
			}
			if got := holdState(t, simDB, c.AuthorizationID); got != "refunded" {
				t.Fatalf("hold is %s, want refunded", got)
			}
			if _, err := s.Exercise(ctx, "unknown", "ord_1", t0, p.capture); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
		})

		t.Run("void before exercise", func(t *testing.T) {
			p := &counting{sim: sim}
			c := confirm(t, s, sim, addMethod(t, s, sim, "usr_v", adapters.SimCardApprove, ""), eur(500))
			x, err := s.Compensate(ctx, c.JTI, "ord_v", "", t0, p.releaseFunc)
			if err != nil || x.State != domain.ExerciseCompensated || !x.AppliedAt.IsZero() || x.RefundID != "" {
				t.Fatalf("void = %+v, %v", x, err)
			}
			if _, err := s.Exercise(ctx, c.JTI, "ord_v", t0, p.capture); !errors.Is(err, domain.ErrVoided) {
				t.Fatalf("exercise after void: %v, want ErrVoided", err)
			}
			if got := holdState(t, simDB, c.AuthorizationID); got != "voided" || p.captures.Load() != 0 {
				t.Fatalf("hold is %s after %d captures, want voided and none", got, p.captures.Load())
			}
		})

		t.Run("failed capture records nothing", func(t *testing.T) {
			p := &counting{sim: sim}
			c := confirm(t, s, sim, addMethod(t, s, sim, "usr_f", adapters.SimCardFailCapture, ""), eur(700))
			for range 2 {
				if _, err := s.Exercise(ctx, c.JTI, "ord_f", t0, p.capture); !errors.Is(err, domain.ErrCaptureFailed) {
					t.Fatalf("Exercise: %v, want ErrCaptureFailed", err)
				}
			}
			if got := holdState(t, simDB, c.AuthorizationID); got != "authorized" {
				t.Fatalf("hold is %s, want authorized", got)
			}
			// No exercise was recorded: compensating voids the hold.
			x, err := s.Compensate(ctx, c.JTI, "ord_f", "", t0, p.releaseFunc)
			if err != nil || !x.AppliedAt.IsZero() || holdState(t, simDB, c.AuthorizationID) != "voided" {
				t.Fatalf("void after failed capture = %+v, %v", x, err)
			}
		})

		t.Run("a lost commit after the capture is repaired by a retry", func(t *testing.T) {
			p := &counting{sim: sim}
			c := confirm(t, s, sim, addMethod(t, s, sim, "usr_l", adapters.SimCardApprove, ""), eur(900))
			var lost string
			crash := func(ctx context.Context, conf domain.Confirmation) (string, error) {
				id, err := p.capture(ctx, conf)
				lost = id
				return "", errors.Join(err, errors.New("connection lost before commit"))
			}
			if _, err := s.Exercise(ctx, c.JTI, "ord_l", t0, crash); err == nil {
				t.Fatal("the crashed exercise succeeded")
			}
			x, err := s.Exercise(ctx, c.JTI, "ord_l", t0, p.capture)
			if err != nil || x.CaptureID != lost {
				t.Fatalf("retry = %+v, %v; want capture %s", x, err, lost)
			}
		})

		t.Run("a failed release records nothing", func(t *testing.T) {
			p := &counting{sim: sim}
			c := confirm(t, s, sim, addMethod(t, s, sim, "usr_r", adapters.SimCardApprove, ""), eur(100))
			if _, err := s.Exercise(ctx, c.JTI, "ord_r", t0, p.capture); err != nil {
				t.Fatal(err)
			}
			down := func(context.Context, domain.Confirmation, domain.Exercise) (string, error) {
				return "", domain.ErrProcessorUnavailable
			}
			if _, err := s.Compensate(ctx, c.JTI, "ord_r", "", t0, down); !errors.Is(err, domain.ErrProcessorUnavailable) {
				t.Fatalf("Compensate with the processor down: %v", err)
			}
			x, err := s.Compensate(ctx, c.JTI, "ord_r", "", t0, p.releaseFunc)
			if err != nil || x.RefundID == "" || holdState(t, simDB, c.AuthorizationID) != "refunded" {
				t.Fatalf("Compensate once the processor is back = %+v, %v", x, err)
			}
		})

		t.Run("no card number is stored anywhere", func(t *testing.T) {
			assertNoCardNumber(t, db, pans...)
			assertNoCardNumber(t, simDB, pans...)
		})
	})
}

// TestConcurrentExercisesOfOneToken runs 50 exercises of one confirmation at
// once, for different orders: exactly one captures.
func TestConcurrentExercisesOfOneToken(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		sim, simDB := newSim(t, db)
		p := &counting{sim: sim}
		c := confirm(t, s, sim, addMethod(t, s, sim, "usr_once", adapters.SimCardApprove, ""), eur(4000))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		for i := range 50 {
			order := fmt.Sprintf("ord_%d", i)
			wg.Go(func() {
				_, err := s.Exercise(context.Background(), c.JTI, order, t0, p.capture)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, order)
					mu.Unlock()
				case !errors.Is(err, domain.ErrAlreadyExercised):
					t.Errorf("exercise for %s: %v", order, err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || p.captures.Load() != 1 {
			t.Fatalf("%d exercises won and capture ran %d times, want exactly 1 and 1", len(winners), p.captures.Load())
		}
		if got := holdState(t, simDB, c.AuthorizationID); got != "captured" {
			t.Fatalf("hold is %s, want captured", got)
		}

		// And concurrent compensations of it refund once.
		for range 20 {
			wg.Go(func() {
				if x, err := s.Compensate(context.Background(), c.JTI, winners[0], "", t0, p.releaseFunc); err != nil || x.RefundID == "" {
					t.Errorf("compensate = %+v, %v", x, err)
				}
			})
		}
		wg.Wait()
		if got := holdState(t, simDB, c.AuthorizationID); got != "refunded" || p.release.Load() != 1 {
			t.Fatalf("hold is %s after %d releases, want refunded after 1", got, p.release.Load())
		}
	})
}
