package adapters_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/points/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/points/internal/domain"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func newStore(t *testing.T, db *sqldb.DB) *adapters.Store {
	t.Helper()
	s, err := adapters.NewStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func grant(t *testing.T, s *adapters.Store, user string, points int64) {
	t.Helper()
	if _, err := s.Grant(t.Context(), domain.Entry{UserID: user, Kind: domain.EntryGrant, Delta: points, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

func confirm(t *testing.T, s *adapters.Store, user string, points int64) domain.Confirmation {
	t.Helper()
	c, created, err := s.SaveConfirmation(t.Context(), domain.Confirmation{
		UserID: user, CheckoutID: ids.New("op"), Points: points, Currency: "EUR",
		Kept: capability.Kept{JTI: ids.New(""), SealedToken: "sealed", ExpiresAt: t0.Add(2 * time.Minute), CreatedAt: t0},
	})
	if err != nil || !created {
		t.Fatalf("SaveConfirmation: created=%v err=%v", created, err)
	}
	return c
}

func balance(t *testing.T, s *adapters.Store, user string) int64 {
	t.Helper()
	b, entries, err := s.Balance(t.Context(), user, 100)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range entries {
		sum += e.Delta
	}
	if len(entries) < 100 && sum != b {
		t.Fatalf("balance %d but the ledger sums to %d", b, sum)
	}
	if len(entries) > 0 && entries[0].BalanceAfter != b {
		t.Fatalf("balance %d but the newest entry says %d", b, entries[0].BalanceAfter)
	}
	return b
}

// TestStoreContract is the one suite every Points store passes, run against
// SQLite and PostgreSQL.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		ctx := t.Context()

		t.Run("grant is idempotent per key", func(t *testing.T) {
			// A time finer than PostgreSQL keeps: the first answer is the
			// entry as stored, equal to the retry's.
			e := domain.Entry{UserID: "usr_g", Kind: domain.EntryGrant, Delta: 500, Reason: "welcome", IdempotencyKey: "k1",
				CreatedAt: t0.Add(123456789 * time.Nanosecond)}
			first, err := s.Grant(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			again, err := s.Grant(ctx, e)
			if err != nil || again != first || again.BalanceAfter != 500 {
				t.Fatalf("retry = %+v, %v; want the first entry %+v", again, err, first)
			}
			e.Delta = 600
			if _, err := s.Grant(ctx, e); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other amount: %v, want ErrIdempotencyConflict", err)
			}
			if got := balance(t, s, "usr_g"); got != 500 {
				t.Fatalf("balance = %d, want 500", got)
			}
		})

		t.Run("unknown user has zero balance", func(t *testing.T) {
			if got := balance(t, s, "usr_nobody"); got != 0 {
				t.Fatalf("balance = %d", got)
			}
		})

		t.Run("confirmation idempotency", func(t *testing.T) {
			c := domain.Confirmation{
				UserID: "usr_c", CheckoutID: "op_1", Points: 10, Currency: "EUR", IdempotencyKey: "ck",
				Kept: capability.Kept{JTI: ids.New(""), SealedToken: "s1", ExpiresAt: t0, CreatedAt: t0},
			}
			if _, created, err := s.SaveConfirmation(ctx, c); err != nil || !created {
				t.Fatalf("first save: %v %v", created, err)
			}
			c2 := c
			c2.JTI, c2.SealedToken = ids.New(""), "s2"
			got, created, err := s.SaveConfirmation(ctx, c2)
			if err != nil || created || got.JTI != c.JTI || got.SealedToken != "s1" {
				t.Fatalf("retry save = %+v %v %v; want the first", got, created, err)
			}
			c2.Points = 11
			if _, _, err := s.SaveConfirmation(ctx, c2); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("conflicting save: %v", err)
			}
			if _, err := s.ConfirmationByKey(ctx, "usr_c", "other"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown key: %v", err)
			}
			if _, err := s.Confirmation(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
		})

		t.Run("exercise, retry, reuse, compensate", func(t *testing.T) {
			grant(t, s, "usr_x", 100)
			c := confirm(t, s, "usr_x", 30)
			x, err := s.Exercise(ctx, c.JTI, "ord_1", t0.Add(123456789*time.Nanosecond))
			if err != nil || x.State != domain.ExerciseApplied || x.Points != 30 {
				t.Fatalf("Exercise = %+v, %v", x, err)
			}
			if got := balance(t, s, "usr_x"); got != 70 {
				t.Fatalf("after spend balance = %d, want 70", got)
			}
			again, err := s.Exercise(ctx, c.JTI, "ord_1", t0.Add(time.Second))
			if err != nil || again != x {
				t.Fatalf("retry = %+v, %v; want the stored result %+v", again, err, x)
			}
			if _, err := s.Exercise(ctx, c.JTI, "ord_2", t0); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("other order: %v, want ErrAlreadyExercised", err)
			}
			if _, err := s.Compensate(ctx, c.JTI, "ord_2", "", t0); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("compensate for another order: %v", err)
			}
			if got := balance(t, s, "usr_x"); got != 70 {
				t.Fatalf("after refused reuse balance = %d, want 70", got)
			}
			for range 2 { // compensation is idempotent
				x, err = s.Compensate(ctx, c.JTI, "ord_1", "saga failed", t0.Add(time.Minute))
				if err != nil || x.State != domain.ExerciseCompensated {
					t.Fatalf("Compensate = %+v, %v", x, err)
				}
				if got := balance(t, s, "usr_x"); got != 100 {
					t.Fatalf("after refund balance = %d, want 100", got)
				}
			}
			if _, err := s.Exercise(ctx, "unknown", "ord_1", t0); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
		})

		t.Run("void before exercise", func(t *testing.T) {
			grant(t, s, "usr_v", 50)
			c := confirm(t, s, "usr_v", 20)
			x, err := s.Compensate(ctx, c.JTI, "ord_v", "", t0)
			if err != nil || x.State != domain.ExerciseCompensated || !x.AppliedAt.IsZero() {
				t.Fatalf("void = %+v, %v", x, err)
			}
			if _, err := s.Exercise(ctx, c.JTI, "ord_v", t0); !errors.Is(err, domain.ErrVoided) {
				t.Fatalf("exercise after void: %v, want ErrVoided", err)
			}
			if got := balance(t, s, "usr_v"); got != 50 {
				t.Fatalf("balance = %d, want 50", got)
			}
		})

		t.Run("insufficient balance changes nothing", func(t *testing.T) {
			grant(t, s, "usr_i", 10)
			c := confirm(t, s, "usr_i", 11)
			if _, err := s.Exercise(ctx, c.JTI, "ord_i", t0); !errors.Is(err, domain.ErrInsufficientPoints) {
				t.Fatalf("overspend: %v", err)
			}
			if got := balance(t, s, "usr_i"); got != 10 {
				t.Fatalf("balance = %d, want 10", got)
			}
			// The failed exercise left no claim: a void still works.
			if x, err := s.Compensate(ctx, c.JTI, "ord_i", "", t0); err != nil || !x.AppliedAt.IsZero() {
				t.Fatalf("void after failed exercise = %+v, %v", x, err)
			}
		})
	})
}

// TestConcurrentSpends spends 200 confirmations concurrently against one
// balance that covers only some of them: the balance ends exactly right and
// never negative.
func TestConcurrentSpends(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		const spends, each, initial = 200, 7, 1000 // 142 fit, 58 must be refused
		grant(t, s, "usr_race", initial)
		confs := make([]domain.Confirmation, spends)
		for i := range confs {
			confs[i] = confirm(t, s, "usr_race", each)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, short := 0, 0
		for i, c := range confs {
			wg.Go(func() {
				_, err := s.Exercise(context.Background(), c.JTI, fmt.Sprintf("ord_%d", i), t0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, domain.ErrInsufficientPoints):
					short++
				default:
					t.Errorf("exercise %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if want := initial / each; ok != want || short != spends-want {
			t.Fatalf("%d spends succeeded and %d were short; want %d and %d", ok, short, want, spends-want)
		}
		if got, want := balance(t, s, "usr_race"), int64(initial-ok*each); got != want || got < 0 {
			t.Fatalf("balance = %d, want %d", got, want)
		}
	})
}

// TestConcurrentExercisesOfOneToken runs 50 exercises of one confirmation at
// once, for different orders: exactly one has an effect.
func TestConcurrentExercisesOfOneToken(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		grant(t, s, "usr_once", 100)
		c := confirm(t, s, "usr_once", 40)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 50 {
			wg.Go(func() {
				_, err := s.Exercise(context.Background(), c.JTI, fmt.Sprintf("ord_%d", i), t0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case !errors.Is(err, domain.ErrAlreadyExercised):
					t.Errorf("exercise %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d exercises won, want exactly 1", won)
		}
		if got := balance(t, s, "usr_once"); got != 60 {
			t.Fatalf("balance = %d, want 60", got)
		}
	})
}
