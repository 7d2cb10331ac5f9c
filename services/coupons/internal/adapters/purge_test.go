package adapters_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
)

// retention is the purge's default: 30 days.
const retention = 30 * 24 * time.Hour

// purgeAt purges as the purge task does at now.
func purgeAt(t *testing.T, s *adapters.Store, now time.Time) capabilitysql.Purged {
	t.Helper()
	p, err := s.Purge(t.Context(), now.Add(-retention))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPurge (issue 15, item 8): a token's confirmation and exercise go once
// the retention has passed since its expiry and the exercise's last change;
// inside it, and before the token expires, they stay. A retry of Exercise or
// Compensate after the purge finds no confirmation (the service answers it
// as a token it does not know, see capabilitysql.Purge), and the coupon
// stays redeemed: the record of the effect is the coupon's, not the token's.
func TestPurge(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		ctx := t.Context()
		applied := confirm(t, s, grant(t, s, "usr_p", campaign("PURGE-APPLIED")))
		if _, err := s.Exercise(ctx, applied.JTI, "ord_a", t0); err != nil {
			t.Fatal(err)
		}
		unused := confirm(t, s, grant(t, s, "usr_p", campaign("PURGE-UNUSED")))
		late := confirm(t, s, grant(t, s, "usr_p", campaign("PURGE-LATE")))
		if _, err := s.Exercise(ctx, late.JTI, "ord_l", t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Compensate(ctx, late.JTI, "ord_l", "payment failed", t0.Add(20*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		exp := applied.ExpiresAt

		for _, now := range []time.Time{t0, exp.Add(time.Minute), exp.Add(retention - time.Second)} {
			if p := purgeAt(t, s, now); p != (capabilitysql.Purged{}) {
				t.Fatalf("purge at %v (inside the retention) deleted %+v", now, p)
			}
		}
		if p := purgeAt(t, s, exp.Add(retention+time.Second)); p != (capabilitysql.Purged{Confirmations: 2, Exercises: 1}) {
			t.Fatalf("purge past the retention deleted %+v, want the applied and the unused token's rows", p)
		}
		for _, c := range []domain.Confirmation{applied, unused} {
			if _, err := s.Confirmation(ctx, c.JTI); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("Confirmation(%s) after the purge = %v, want ErrNotFound", c.JTI, err)
			}
		}
		// Compensated 20 days after t0: its retention runs from then.
		if _, err := s.Confirmation(ctx, late.JTI); err != nil {
			t.Errorf("the late-compensated token was purged before its retention: %v", err)
		}
		later := t0.Add(20*24*time.Hour + retention + time.Second)
		if p := purgeAt(t, s, later); p != (capabilitysql.Purged{Confirmations: 1, Exercises: 1}) {
			t.Errorf("purge past the late compensation's retention deleted %+v", p)
		}

		if _, err := s.Exercise(ctx, applied.JTI, "ord_a", later); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Exercise retried after the purge = %v, want ErrNotFound", err)
		}
		if _, err := s.Compensate(ctx, applied.JTI, "ord_a", "late", later); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Compensate after the purge = %v, want ErrNotFound", err)
		}
		if _, err := s.Compensate(ctx, unused.JTI, "ord_u", "late", later); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Compensate of a purged unused token = %v, want ErrNotFound", err)
		}
		wantState(t, s, "usr_p", "PURGE-APPLIED", domain.CouponRedeemed, applied.JTI)
		wantState(t, s, "usr_p", "PURGE-UNUSED", domain.CouponAvailable, "")
	})
}

// TestConcurrentPurges runs two purges at once, as two replicas do: every
// row is deleted once and neither purge fails.
func TestConcurrentPurges(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		const tokens = 30
		for i := range tokens {
			c := confirm(t, s, grant(t, s, "usr_c", campaign(fmt.Sprint("PURGE-C", i))))
			if i%2 == 0 {
				if _, err := s.Exercise(t.Context(), c.JTI, fmt.Sprint("ord_", i), t0); err != nil {
					t.Fatal(err)
				}
			}
		}
		now := t0.Add(retention + time.Hour)
		var wg sync.WaitGroup
		got := make([]capabilitysql.Purged, 2)
		errs := make([]error, 2)
		for i := range got {
			wg.Go(func() { got[i], errs[i] = s.Purge(t.Context(), now.Add(-retention)) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("purges failed: %v, %v", errs[0], errs[1])
		}
		if c, x := got[0].Confirmations+got[1].Confirmations, got[0].Exercises+got[1].Exercises; c != tokens || x != tokens/2 {
			t.Fatalf("purges deleted %+v and %+v; want %d confirmations and %d exercises in all", got[0], got[1], tokens, tokens/2)
		}
	})
}
