package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/saga"
)

// sealer keeps tokens in the clear, bound to their record id, so that a
// token opened under another order's id fails as a real vault's would.
type sealer struct{}

func (sealer) Seal(id, token string) (string, error) { return id + "|" + token, nil }
func (sealer) Open(id, sealed string) (string, error) {
	tok, ok := strings.CutPrefix(sealed, id+"|")
	if !ok {
		return "", errors.New("sealed under another record id")
	}
	return tok, nil
}

// calls stands for the issuers' CapabilityService: exercise answers each
// call; compensate, when set, answers each compensation (which otherwise
// succeeds).
type calls struct {
	exercise   func(ctx context.Context, issuer string) (string, error)
	compensate func(ctx context.Context, issuer string) error

	mu          sync.Mutex
	compensated []string
}

func (c *calls) Exercise(ctx context.Context, issuer, _, _, _ string) (string, error) {
	return c.exercise(ctx, issuer)
}

func (c *calls) Compensate(ctx context.Context, issuer, _, _, _, _ string) error {
	c.mu.Lock()
	c.compensated = append(c.compensated, issuer)
	c.mu.Unlock()
	if c.compensate != nil {
		return c.compensate(ctx, issuer)
	}
	return nil
}

// calledFor returns how many times Compensate was called for issuer.
func (c *calls) calledFor(issuer string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, i := range c.compensated {
		if i == issuer {
			n++
		}
	}
	return n
}

// frozen is a replica's view of the store while its process is frozen
// (SIGSTOP, a GC pause, a VM freeze): once freeze is closed, its lease
// renewals (Claim) no longer reach the database until the test ends them.
type frozen struct {
	domain.Repository
	freeze chan struct{}
}

func (f frozen) Claim(ctx context.Context, id, owner string, now, until time.Time) (domain.Lease, bool, error) {
	select {
	case <-f.freeze:
		<-ctx.Done()
		return domain.Lease{}, false, ctx.Err()
	default:
		return f.Repository.Claim(ctx, id, owner, now, until)
	}
}

// requestTraceParent is the trace context of the request that placed the
// orders of placed.
const requestTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// placed stores an open checkout and a pending order of two steps (coupons
// in stage 1, payments in stage 2), as PlaceOrder would.
func placed(t *testing.T, store *adapters.Store) domain.Order {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	key := ids.New("k") // so that one store holds several orders
	eur := func(v int64) money.Money { return money.Money{AmountMinor: v, Currency: "EUR"} }
	co, _, err := store.CreateCheckout(t.Context(), domain.Checkout{ID: ids.New("op"), UserID: "usr_ann",
		Lines: []domain.Line{{SKU: "TEA", Name: "Tea", Quantity: 1, UnitPrice: eur(1000), LineTotal: eur(1000)}},
		Total: eur(1000), Status: domain.CheckoutOpen, IdempotencyKey: key, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, domain.IssuedToken{})
	if err != nil {
		t.Fatal(err)
	}
	o := domain.Order{ID: ids.New("ord"), CheckoutID: co.ID, UserID: co.UserID, Lines: co.Lines, Total: co.Total,
		Status: domain.OrderPending, IdempotencyKey: key, Version: 1, CreatedAt: now, UpdatedAt: now,
		Txn: ids.New("txn"), TraceParent: requestTraceParent}
	for _, s := range []struct {
		capability, issuer string
		stage              int
		amount             int64
	}{{"coupons:redeem", "coupons", 1, 200}, {"payments:capture", "payments", 2, 800}} {
		sealed, _ := sealer{}.Seal(app.TokenRecordID(o.ID, s.capability), "token-"+s.issuer)
		o.Steps = append(o.Steps, domain.Step{Capability: s.capability, Issuer: s.issuer, Stage: s.stage,
			State: domain.StepPending, Settlement: eur(s.amount), JTI: ids.New(""), ExpiresAt: now.Add(time.Hour),
			SealedToken: sealed})
	}
	if _, _, err := store.PlaceOrder(t.Context(), o, now); err != nil {
		t.Fatal(err)
	}
	return o
}

func newStore(t *testing.T, db *sqldb.DB) *adapters.Store {
	t.Helper()
	guard, err := replay.New(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(guard.Close)
	store, err := adapters.NewStore(t.Context(), db, guard)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// TestPausedReplicaIsFenced: replica A is frozen inside its exercise call
// of the first stage, with its lease renewals stopped; its lease expires and
// replica B takes the order over, fails it (the issuer refuses the step for
// good) and compensates every step. When A thaws and the call returns, A's
// writes are refused by the lease: the order stays FAILED, every step
// COMPENSATED, and A exercises nothing more (the payment is never
// captured).
func TestPausedReplicaIsFenced(t *testing.T) {
	for name, open := range map[string]func(testing.TB, ...sqldb.Option) *sqldb.DB{
		"sqlite": sqldbtest.SQLite, "postgres": sqldbtest.Postgres,
	} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			store := newStore(t, db)
			o := placed(t, store)
			log := slog.New(slog.DiscardHandler)

			entered, thaw := make(chan struct{}), make(chan struct{})
			var mu sync.Mutex
			var calledByA []string
			a := &calls{exercise: func(_ context.Context, issuer string) (string, error) {
				mu.Lock()
				calledByA = append(calledByA, issuer)
				mu.Unlock()
				if issuer == "coupons" {
					close(entered)
					<-thaw // frozen mid-call; the call itself returns success
				}
				return "ref-" + issuer, nil
			}}
			repoA := frozen{Repository: store, freeze: make(chan struct{})}
			runnerA := saga.New(saga.Config{Repo: repoA, Sealer: sealer{}, Calls: a, Logger: log, Lease: time.Minute})
			aDone := make(chan error, 1)
			go func() { aDone <- runnerA.Drive(t.Context(), o.ID) }()
			<-entered
			close(repoA.freeze)

			// B's clock is past A's lease: it may take the order over.
			b := &calls{exercise: func(context.Context, string) (string, error) {
				return "", connect.NewError(connect.CodeFailedPrecondition, errors.New("refused for good"))
			}}
			runnerB := saga.New(saga.Config{Repo: store, Sealer: sealer{}, Calls: b, Logger: log, Lease: time.Minute,
				Now: func() time.Time { return time.Now().Add(time.Hour) }})
			if err := runnerB.Drive(t.Context(), o.ID); err != nil {
				t.Fatalf("B: Drive: %v", err)
			}
			failed, err := store.Order(t.Context(), o.ID)
			if err != nil || failed.Status != domain.OrderFailed {
				t.Fatalf("after B: order %v, %v; want FAILED", failed.Status, err)
			}

			close(thaw)
			if err := <-aDone; !errors.Is(err, domain.ErrLeaseLost) {
				t.Errorf("A: Drive = %v, want ErrLeaseLost", err)
			}
			got, err := store.Order(t.Context(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != domain.OrderFailed || got.Version != failed.Version {
				t.Errorf("after A thawed: order %v version %d, want FAILED version %d unchanged", got.Status, got.Version, failed.Version)
			}
			for _, st := range got.Steps {
				if st.State != domain.StepCompensated {
					t.Errorf("after A thawed: step %s is %v, want COMPENSATED", st.Capability, st.State)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(calledByA) != 1 {
				t.Errorf("A called Exercise for %v after its lease was lost; want only the first call", calledByA)
			}
		})
	}
}

// records is a slog.Handler that keeps every record, for tests that check
// what was logged.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (*records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

// errors returns the ERROR records, each as its message and attributes.
func (h *records) errors() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.recs {
		if r.Level < slog.LevelError {
			continue
		}
		m := map[string]string{"msg": r.Message}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

// TestCompensationRefusedForGood (issue 15, item 4): the payment capture is
// refused, and Coupons refuses for good to compensate the redeemed coupon
// (its own check fails: the token was exercised for another order). The
// saga must not retry that refusal forever: the coupons step ends
// COMPENSATION_REFUSED with the issuer's answer, the payment step is still
// compensated, the order ends NEEDS_OPERATOR with a reason naming the
// refused step, Drive returns, the refusal is counted once and logged at
// ERROR once (without the token), and no replica's recovery picks the order
// up. An operator's retry then puts it back to COMPENSATING for any
// replica, and once Coupons accepts, the order ends FAILED.
func TestCompensationRefusedForGood(t *testing.T) {
	for name, open := range map[string]func(testing.TB, ...sqldb.Option) *sqldb.DB{
		"sqlite": sqldbtest.SQLite, "postgres": sqldbtest.Postgres,
	} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			store := newStore(t, db)
			o := placed(t, store)
			logs := &records{}
			ctx, stop := context.WithCancel(t.Context())
			defer stop()

			const refusal = "exercised for another order"
			var accept atomic.Bool // Coupons accepts compensations once set
			c := &calls{
				exercise: func(_ context.Context, issuer string) (string, error) {
					if issuer == "payments" {
						return "", connect.NewError(connect.CodeFailedPrecondition, errors.New("card declined"))
					}
					return "ref-" + issuer, nil
				},
				compensate: func(_ context.Context, issuer string) error {
					if issuer != "coupons" || accept.Load() {
						return nil
					}
					return connect.NewError(connect.CodeAlreadyExists, errors.New(refusal))
				},
			}
			// Before the fix the saga retried the refusal forever: stop it
			// after a few calls, so that the test fails instead of hanging.
			guard := c.compensate
			c.compensate = func(ctx context.Context, issuer string) error {
				if issuer == "coupons" && !accept.Load() && c.calledFor("coupons") > 3 {
					stop()
				}
				return guard(ctx, issuer)
			}
			r := saga.New(saga.Config{Repo: store, Sealer: sealer{}, Calls: c, Logger: slog.New(logs),
				Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
			if err := r.Drive(ctx, o.ID); err != nil {
				t.Fatalf("Drive = %v, want nil: the saga must end, not retry a refusal for good", err)
			}
			if n := c.calledFor("coupons"); n != 1 {
				t.Errorf("Compensate called %d times for the refused step, want 1", n)
			}
			got, err := store.Order(t.Context(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != domain.OrderNeedsOperator {
				t.Fatalf("order %v, want NEEDS_OPERATOR", got.Status)
			}
			if !strings.Contains(got.FailureReason, "payments:capture refused") ||
				!strings.Contains(got.FailureReason, "compensation refused by coupons:redeem (already_exists: "+refusal+")") {
				t.Errorf("failure reason %q: want the failed step and the refused one with the issuer's answer", got.FailureReason)
			}
			for _, st := range got.Steps {
				want, wantErr := domain.StepCompensated, ""
				if st.Capability == "coupons:redeem" {
					want, wantErr = domain.StepCompensationRefused, "already_exists: "+refusal
				}
				if st.State != want || st.LastError != wantErr {
					t.Errorf("step %s: %v %q, want %v %q", st.Capability, st.State, st.LastError, want, wantErr)
				}
			}
			if n := r.Refused("coupons:redeem"); n != 1 {
				t.Errorf("Refused(coupons:redeem) = %d, want 1", n)
			}
			if n := r.Refused("payments:capture"); n != 0 {
				t.Errorf("Refused(payments:capture) = %d, want 0", n)
			}
			if done, failed := r.Outcomes(); done != 0 || failed != 0 {
				t.Errorf("Outcomes = %d completed, %d failed; want neither for an order that needs an operator", done, failed)
			}
			errs := logs.errors()
			if len(errs) != 1 {
				t.Fatalf("%d ERROR records, want 1: %v", len(errs), errs)
			}
			for k, v := range map[string]string{"order": o.ID, "capability": "coupons:redeem", "code": "already_exists", "message": refusal} {
				if errs[0][k] != v {
					t.Errorf("ERROR record %s = %q, want %q (%v)", k, errs[0][k], v, errs[0])
				}
			}
			if line := fmt.Sprint(errs[0]); strings.Contains(line, "token-coupons") {
				t.Errorf("the ERROR record carries the token: %s", line)
			}
			// Final: no replica claims or lists it.
			later := time.Now().Add(time.Hour)
			if _, ok, err := store.Claim(t.Context(), o.ID, "another", later, later.Add(time.Minute)); ok || err != nil {
				t.Errorf("Claim of an order that needs an operator = %v, %v; want refused", ok, err)
			}
			if ids, err := store.Unfinished(t.Context(), later, 100); err != nil || len(ids) != 0 {
				t.Errorf("Unfinished = %v, %v; want none", ids, err)
			}

			// The operator retries once the cause is fixed.
			accept.Store(true)
			op := app.Operator{Repo: store.Operator()}
			back, retried, err := op.Retry(t.Context(), o.ID)
			if err != nil || back.Status != domain.OrderCompensating || len(retried) != 1 || retried[0].State != domain.StepCompensating {
				t.Fatalf("Retry = %v %+v, %v; want COMPENSATING with the coupons step", back.Status, retried, err)
			}
			if ids, err := store.Unfinished(t.Context(), time.Now(), 100); err != nil || len(ids) != 1 || ids[0] != o.ID {
				t.Fatalf("Unfinished after the retry = %v, %v; want the order, its lease free", ids, err)
			}
			if err := saga.New(saga.Config{Repo: store, Sealer: sealer{}, Calls: c, Logger: slog.New(logs)}).Drive(t.Context(), o.ID); err != nil {
				t.Fatal(err)
			}
			end, err := store.Order(t.Context(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if end.Status != domain.OrderFailed || end.FailureReason != "payments:capture refused: failed_precondition: card declined" {
				t.Fatalf("after the retry: %v %q, want FAILED with the original reason", end.Status, end.FailureReason)
			}
			for _, st := range end.Steps {
				if st.State != domain.StepCompensated {
					t.Errorf("after the retry: step %s %v, want COMPENSATED", st.Capability, st.State)
				}
			}
			if _, _, err := op.Retry(t.Context(), o.ID); !errors.Is(err, domain.ErrNotStuck) {
				t.Errorf("Retry of a FAILED order = %v, want ErrNotStuck", err)
			}
		})
	}
}

// TestCompensationTransientKeepsRetrying: transient answers to Compensate
// (unavailable, deadline exceeded, ...) are retried, not refused.
func TestCompensationTransientKeepsRetrying(t *testing.T) {
	store := newStore(t, sqldbtest.SQLite(t))
	o := placed(t, store)
	var n atomic.Int32
	c := &calls{
		exercise: func(_ context.Context, issuer string) (string, error) {
			if issuer == "payments" {
				return "", connect.NewError(connect.CodeFailedPrecondition, errors.New("card declined"))
			}
			return "ref-" + issuer, nil
		},
		compensate: func(_ context.Context, issuer string) error {
			if issuer == "coupons" {
				switch n.Add(1) {
				case 1:
					return connect.NewError(connect.CodeUnavailable, errors.New("down"))
				case 2:
					return connect.NewError(connect.CodeDeadlineExceeded, errors.New("slow"))
				case 3:
					return connect.NewError(connect.CodeResourceExhausted, errors.New("busy"))
				}
			}
			return nil
		},
	}
	r := saga.New(saga.Config{Repo: store, Sealer: sealer{}, Calls: c, Logger: slog.New(slog.DiscardHandler),
		Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err := r.Drive(t.Context(), o.ID); err != nil {
		t.Fatal(err)
	}
	got, err := store.Order(t.Context(), o.ID)
	if err != nil || got.Status != domain.OrderFailed {
		t.Fatalf("order %v, %v; want FAILED", got.Status, err)
	}
	if n.Load() != 4 || r.Refused("coupons:redeem") != 0 {
		t.Fatalf("coupons compensated after %d calls, %d refused; want 4 calls, none refused", n.Load(), r.Refused("coupons:redeem"))
	}
}

// TestJitter: each wait is drawn from [d/2, d] and spread over it.
func TestJitter(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{time.Millisecond, 100 * time.Millisecond, 5 * time.Second} {
		lo, hi := d, time.Duration(0)
		for range 2000 {
			j := saga.Jitter(d)
			if j < d/2 || j > d {
				t.Fatalf("Jitter(%v) = %v, want within [%v, %v]", d, j, d/2, d)
			}
			lo, hi = min(lo, j), max(hi, j)
		}
		// 2000 uniform draws cover all but a sliver of the range.
		if lo > d/2+d/20 || hi < d-d/20 {
			t.Errorf("Jitter(%v) over 2000 draws spans [%v, %v], want about [%v, %v]", d, lo, hi, d/2, d)
		}
	}
	if got := saga.Jitter(0); got != 0 {
		t.Errorf("Jitter(0) = %v", got)
	}
}
