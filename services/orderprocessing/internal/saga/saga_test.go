package saga_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
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
// call, compensate always succeeds.
type calls struct {
	exercise func(ctx context.Context, issuer string) (string, error)

	mu          sync.Mutex
	compensated []string
}

func (c *calls) Exercise(ctx context.Context, issuer, _, _, _ string) (string, error) {
	return c.exercise(ctx, issuer)
}

func (c *calls) Compensate(_ context.Context, issuer, _, _, _, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compensated = append(c.compensated, issuer)
	return nil
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

// placed stores an open checkout and a pending order of two steps (coupons
// in stage 1, payments in stage 2), as PlaceOrder would.
func placed(t *testing.T, store *adapters.Store) domain.Order {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	eur := func(v int64) money.Money { return money.Money{AmountMinor: v, Currency: "EUR"} }
	co, _, err := store.CreateCheckout(t.Context(), domain.Checkout{ID: ids.New("op"), UserID: "usr_ann",
		Lines: []domain.Line{{SKU: "TEA", Name: "Tea", Quantity: 1, UnitPrice: eur(1000), LineTotal: eur(1000)}},
		Total: eur(1000), Status: domain.CheckoutOpen, IdempotencyKey: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	o := domain.Order{ID: ids.New("ord"), CheckoutID: co.ID, UserID: co.UserID, Lines: co.Lines, Total: co.Total,
		Status: domain.OrderPending, IdempotencyKey: "k", Version: 1, CreatedAt: now, UpdatedAt: now}
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
