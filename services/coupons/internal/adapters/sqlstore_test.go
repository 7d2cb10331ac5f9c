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
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
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

// campaign is a valid campaign around t0; code must be unique per store.
func campaign(code string) domain.Campaign {
	return domain.Campaign{Code: code, Description: "5 off", Kind: domain.DiscountFixed, AmountOff: 500,
		MinimumSpend: 1000, Currency: "EUR", ValidFrom: t0.Add(-24 * time.Hour), ValidUntil: t0.Add(24 * time.Hour)}
}

func grant(t *testing.T, s *adapters.Store, user string, c domain.Campaign) domain.Coupon {
	t.Helper()
	cp, err := s.Grant(t.Context(), domain.Coupon{UserID: user, Campaign: c, GrantedBy: "usr_admin", CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func confirm(t *testing.T, s *adapters.Store, cp domain.Coupon) domain.Confirmation {
	t.Helper()
	c, created, err := s.SaveConfirmation(t.Context(), domain.Confirmation{
		UserID: cp.UserID, CheckoutID: ids.New("op"), CouponID: cp.ID, Code: cp.Campaign.Code, Discount: 500, Currency: "EUR",
		Kept: capability.Kept{JTI: ids.New(""), SealedToken: "sealed", ExpiresAt: t0.Add(2 * time.Minute), CreatedAt: t0},
	})
	if err != nil || !created {
		t.Fatalf("SaveConfirmation: created=%v err=%v", created, err)
	}
	return c
}

func coupon(t *testing.T, s *adapters.Store, user, code string) domain.Coupon {
	t.Helper()
	cp, err := s.CouponByCode(t.Context(), user, code)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func wantState(t *testing.T, s *adapters.Store, user, code string, state domain.CouponState, jti string) {
	t.Helper()
	cp := coupon(t, s, user, code)
	if cp.State != state || cp.RedeemedJTI != jti {
		t.Fatalf("coupon %s state %d redeemed by %q; want %d by %q", code, cp.State, cp.RedeemedJTI, state, jti)
	}
}

func wantUnusable(t *testing.T, err error, r domain.Reason) {
	t.Helper()
	ue, ok := errors.AsType[*domain.UnusableError](err)
	if !ok || ue.Reason != r || !errors.Is(err, domain.ErrUnusable) {
		t.Fatalf("err = %v, want unusable: %v", err, r)
	}
}

// TestStoreContract is the one suite every Coupons store passes, run against
// SQLite and PostgreSQL.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		ctx := t.Context()

		t.Run("grant is idempotent per admin, user and key", func(t *testing.T) {
			// A time finer than PostgreSQL keeps: the first answer is the
			// coupon as stored, equal to the retry's.
			g := domain.Coupon{UserID: "usr_g", Campaign: campaign("GRANT-1"), GrantedBy: "usr_admin",
				IdempotencyKey: "k1", CreatedAt: t0.Add(123456789 * time.Nanosecond)}
			first, err := s.Grant(ctx, g)
			if err != nil || first.State != domain.CouponAvailable || !first.Campaign.SameTerms(g.Campaign) {
				t.Fatalf("Grant = %+v, %v", first, err)
			}
			again, err := s.Grant(ctx, g)
			if err != nil || again != first {
				t.Fatalf("retry = %+v, %v; want the first coupon %+v", again, err, first)
			}
			other := g
			other.Campaign = campaign("GRANT-2")
			if _, err := s.Grant(ctx, other); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other campaign: %v, want ErrIdempotencyConflict", err)
			}
			if _, err := s.CouponByCode(ctx, "usr_g", "GRANT-2"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("the refused grant left a coupon: %v", err)
			}
			other.GrantedBy = "usr_admin2" // the key is the other admin's own
			if cp, err := s.Grant(ctx, other); err != nil || cp.Campaign.Code != "GRANT-2" {
				t.Fatalf("other admin's key = %+v, %v", cp, err)
			}
		})

		t.Run("a user holds one coupon per campaign", func(t *testing.T) {
			first := grant(t, s, "usr_once", campaign("ONCE"))
			g := domain.Coupon{UserID: "usr_once", Campaign: campaign("ONCE"), GrantedBy: "usr_admin2",
				IdempotencyKey: "new-key", CreatedAt: t0.Add(time.Hour)}
			again, err := s.Grant(ctx, g)
			if err != nil || again.ID != first.ID || !again.CreatedAt.Equal(t0) {
				t.Fatalf("second grant = %+v, %v; want the existing coupon %s", again, err, first.ID)
			}
			if got := grant(t, s, "usr_once_2", campaign("ONCE")); got.ID == first.ID {
				t.Fatal("another user got the same coupon")
			}
		})

		t.Run("campaign code with other terms conflicts", func(t *testing.T) {
			grant(t, s, "usr_k1", campaign("TERMS"))
			for name, change := range map[string]func(*domain.Campaign){
				"amount":      func(c *domain.Campaign) { c.AmountOff++ },
				"minimum":     func(c *domain.Campaign) { c.MinimumSpend++ },
				"currency":    func(c *domain.Campaign) { c.Currency = "USD" },
				"window":      func(c *domain.Campaign) { c.ValidUntil = c.ValidUntil.Add(time.Second) },
				"description": func(c *domain.Campaign) { c.Description = "other" },
				"kind": func(c *domain.Campaign) {
					c.Kind, c.AmountOff, c.PercentOffBPS = domain.DiscountPercent, 0, 500
				},
			} {
				c := campaign("TERMS")
				change(&c)
				_, err := s.Grant(ctx, domain.Coupon{UserID: "usr_k2", Campaign: c, GrantedBy: "usr_admin", CreatedAt: t0})
				if !errors.Is(err, domain.ErrCampaignConflict) {
					t.Fatalf("other %s: %v, want ErrCampaignConflict", name, err)
				}
			}
			if got, err := s.Coupons(ctx, "usr_k2"); err != nil || len(got) != 0 {
				t.Fatalf("refused grants left coupons %+v, %v", got, err)
			}
		})

		t.Run("list", func(t *testing.T) {
			a := grant(t, s, "usr_l", campaign("LIST-A"))
			pct := campaign("LIST-B")
			pct.Kind, pct.AmountOff, pct.PercentOffBPS, pct.MinimumSpend = domain.DiscountPercent, 0, 1250, 0
			b := grant(t, s, "usr_l", pct)
			grant(t, s, "usr_l_other", campaign("LIST-C"))
			got, err := s.Coupons(ctx, "usr_l")
			if err != nil || len(got) != 2 {
				t.Fatalf("Coupons = %+v, %v; want 2", got, err)
			}
			byID := map[string]domain.Coupon{got[0].ID: got[0], got[1].ID: got[1]}
			for _, want := range []domain.Coupon{a, b} {
				cp, ok := byID[want.ID]
				if !ok || cp.UserID != "usr_l" || cp.State != domain.CouponAvailable || !cp.Campaign.SameTerms(want.Campaign) {
					t.Fatalf("listed %+v, want %+v", cp, want)
				}
			}
			if none, err := s.Coupons(ctx, "usr_nobody"); err != nil || len(none) != 0 {
				t.Fatalf("unknown user: %+v, %v", none, err)
			}
			if _, err := s.CouponByCode(ctx, "usr_l", "LIST-C"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("another user's code: %v, want ErrNotFound", err)
			}
		})

		t.Run("confirmation idempotency", func(t *testing.T) {
			cp := grant(t, s, "usr_c", campaign("CONF"))
			c := domain.Confirmation{
				UserID: "usr_c", CheckoutID: "op_1", CouponID: cp.ID, Code: "CONF", Discount: 500, Currency: "EUR", IdempotencyKey: "ck",
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
			c2.CheckoutID = "op_2"
			if _, _, err := s.SaveConfirmation(ctx, c2); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("conflicting save: %v", err)
			}
			if byKey, err := s.ConfirmationByKey(ctx, "usr_c", "ck"); err != nil || byKey.JTI != c.JTI {
				t.Fatalf("ConfirmationByKey = %+v, %v", byKey, err)
			}
			if byJTI, err := s.Confirmation(ctx, c.JTI); err != nil || byJTI != c {
				t.Fatalf("Confirmation = %+v, %v; want %+v", byJTI, err, c)
			}
			if _, err := s.ConfirmationByKey(ctx, "usr_c", "other"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown key: %v", err)
			}
			if _, err := s.Confirmation(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
		})

		t.Run("exercise, retry, reuse, compensate", func(t *testing.T) {
			cp := grant(t, s, "usr_x", campaign("EXER"))
			c := confirm(t, s, cp)
			x, err := s.Exercise(ctx, c.JTI, "ord_1", t0)
			if err != nil || x.State != domain.ExerciseApplied || x.Discount != 500 || x.CouponID != cp.ID ||
				x.RedemptionID == "" || !x.AppliedAt.Equal(t0) {
				t.Fatalf("Exercise = %+v, %v", x, err)
			}
			wantState(t, s, "usr_x", "EXER", domain.CouponRedeemed, c.JTI)
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
			wantState(t, s, "usr_x", "EXER", domain.CouponRedeemed, c.JTI)
			for range 2 { // compensation is idempotent
				x, err = s.Compensate(ctx, c.JTI, "ord_1", "saga failed", t0.Add(time.Minute))
				if err != nil || x.State != domain.ExerciseCompensated || x.Reason != "saga failed" || x.AppliedAt.IsZero() {
					t.Fatalf("Compensate = %+v, %v", x, err)
				}
				wantState(t, s, "usr_x", "EXER", domain.CouponAvailable, "")
			}
			// The restored coupon can be redeemed again, by a new
			// confirmation only.
			if _, err := s.Exercise(ctx, c.JTI, "ord_3", t0); !errors.Is(err, domain.ErrAlreadyExercised) {
				t.Fatalf("old token for a new order: %v", err)
			}
			c2 := confirm(t, s, cp)
			if _, err := s.Exercise(ctx, c2.JTI, "ord_3", t0); err != nil {
				t.Fatal(err)
			}
			wantState(t, s, "usr_x", "EXER", domain.CouponRedeemed, c2.JTI)
			if _, err := s.Exercise(ctx, "unknown", "ord_1", t0); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
			if _, err := s.Compensate(ctx, "unknown", "ord_1", "", t0); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("compensate unknown jti: %v", err)
			}
		})

		t.Run("void before exercise", func(t *testing.T) {
			cp := grant(t, s, "usr_v", campaign("VOID"))
			c := confirm(t, s, cp)
			for range 2 {
				x, err := s.Compensate(ctx, c.JTI, "ord_v", "checkout cancelled", t0)
				if err != nil || x.State != domain.ExerciseCompensated || !x.AppliedAt.IsZero() || x.RedemptionID != "" {
					t.Fatalf("void = %+v, %v", x, err)
				}
			}
			if _, err := s.Exercise(ctx, c.JTI, "ord_v", t0); !errors.Is(err, domain.ErrVoided) {
				t.Fatalf("exercise after void: %v, want ErrVoided", err)
			}
			wantState(t, s, "usr_v", "VOID", domain.CouponAvailable, "")
		})

		t.Run("validity is checked again at exercise", func(t *testing.T) {
			cp := grant(t, s, "usr_w", campaign("WINDOW"))
			c := confirm(t, s, cp)
			if _, err := s.Exercise(ctx, c.JTI, "ord_w", cp.Campaign.ValidUntil); err == nil {
				t.Fatal("exercise at the end of the window succeeded")
			} else {
				wantUnusable(t, err, domain.ReasonExpired)
			}
			_, err := s.Exercise(ctx, c.JTI, "ord_w", cp.Campaign.ValidFrom.Add(-time.Nanosecond))
			wantUnusable(t, err, domain.ReasonNotYetValid)
			wantState(t, s, "usr_w", "WINDOW", domain.CouponAvailable, "")
			// The refusals left no claim: a void still works.
			if x, err := s.Compensate(ctx, c.JTI, "ord_w", "", t0); err != nil || !x.AppliedAt.IsZero() {
				t.Fatalf("void after refused exercise = %+v, %v", x, err)
			}
		})

		t.Run("a coupon redeemed by another confirmation", func(t *testing.T) {
			cp := grant(t, s, "usr_2", campaign("TWICE"))
			first, second := confirm(t, s, cp), confirm(t, s, cp)
			if _, err := s.Exercise(ctx, first.JTI, "ord_a", t0); err != nil {
				t.Fatal(err)
			}
			_, err := s.Exercise(ctx, second.JTI, "ord_b", t0)
			wantUnusable(t, err, domain.ReasonAlreadyUsed)
			wantState(t, s, "usr_2", "TWICE", domain.CouponRedeemed, first.JTI)
			// Voiding the refused one leaves the redemption alone.
			if _, err := s.Compensate(ctx, second.JTI, "ord_b", "", t0); err != nil {
				t.Fatal(err)
			}
			wantState(t, s, "usr_2", "TWICE", domain.CouponRedeemed, first.JTI)
		})
	})
}

// TestConcurrentGrants grants one campaign with one key many times at once:
// one campaign, one coupon.
func TestConcurrentGrants(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		const n = 20
		got := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				cp, err := s.Grant(context.Background(), domain.Coupon{UserID: "usr_cg", Campaign: campaign("RACE"),
					GrantedBy: "usr_admin", IdempotencyKey: "same", CreatedAt: t0})
				if err != nil {
					t.Errorf("grant %d: %v", i, err)
				}
				got[i] = cp.ID
			})
		}
		wg.Wait()
		for i, id := range got {
			if id != got[0] {
				t.Fatalf("grant %d returned %s, grant 0 %s", i, id, got[0])
			}
		}
	})
}

// TestConcurrentExercisesOfOneToken runs 50 exercises of one confirmation at
// once, for different orders: exactly one has an effect.
func TestConcurrentExercisesOfOneToken(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		cp := grant(t, s, "usr_once", campaign("ONE-TOKEN"))
		c := confirm(t, s, cp)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := ""
		wins := 0
		for i := range 50 {
			wg.Go(func() {
				order := fmt.Sprintf("ord_%d", i)
				_, err := s.Exercise(context.Background(), c.JTI, order, t0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
					won = order
				case !errors.Is(err, domain.ErrAlreadyExercised):
					t.Errorf("exercise %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d exercises won, want exactly 1", wins)
		}
		wantState(t, s, "usr_once", "ONE-TOKEN", domain.CouponRedeemed, c.JTI)
		if got := coupon(t, s, "usr_once", "ONE-TOKEN"); got.RedeemedOrder != won {
			t.Fatalf("redeemed for %s, but %s won", got.RedeemedOrder, won)
		}
	})
}

// TestConcurrentConfirmationsOfOneCoupon exercises two different
// confirmations of one coupon at once, for many coupons: exactly one of each
// pair redeems, the other is refused as already used.
func TestConcurrentConfirmationsOfOneCoupon(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		const coupons = 20
		type pair struct {
			code string
			jtis [2]string
		}
		pairs := make([]pair, coupons)
		for i := range pairs {
			code := fmt.Sprintf("PAIR-%d", i)
			cp := grant(t, s, "usr_pair", campaign(code))
			pairs[i] = pair{code: code, jtis: [2]string{confirm(t, s, cp).JTI, confirm(t, s, cp).JTI}}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := map[string][]string{}
		for _, p := range pairs {
			for j, jti := range p.jtis {
				wg.Go(func() {
					_, err := s.Exercise(context.Background(), jti, fmt.Sprintf("ord_%s_%d", p.code, j), t0)
					if ue, ok := errors.AsType[*domain.UnusableError](err); ok && ue.Reason == domain.ReasonAlreadyUsed {
						return
					}
					if err != nil {
						t.Errorf("exercise %s/%d: %v", p.code, j, err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					won[p.code] = append(won[p.code], jti)
				})
			}
		}
		wg.Wait()
		for _, p := range pairs {
			if len(won[p.code]) != 1 {
				t.Fatalf("coupon %s redeemed by %d confirmations, want exactly 1", p.code, len(won[p.code]))
			}
			wantState(t, s, "usr_pair", p.code, domain.CouponRedeemed, won[p.code][0])
		}
	})
}
