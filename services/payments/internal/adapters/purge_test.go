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
	"github.com/tokenrelay/tokenrelay/services/payments/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

// retention is the purge's default: 30 days.
const retention = 30 * 24 * time.Hour

func purgeAt(t *testing.T, s *adapters.Store, now time.Time) capabilitysql.Purged {
	t.Helper()
	p, err := s.Purge(t.Context(), now.Add(-retention))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPurge (issue 15, item 8): a token's confirmation and exercise go once
// the retention has passed since its expiry and the exercise's last change,
// not before; a retry of Exercise or Compensate after the purge finds no
// confirmation (see capabilitysql.Purge) and calls the processor for
// nothing; the payment method stays.
func TestPurge(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		sim, _ := newSim(t, db)
		p := &counting{sim: sim}
		ctx := t.Context()
		m := addMethod(t, s, sim, "usr_p", adapters.SimCardApprove, "")
		applied := confirm(t, s, sim, m, eur(1000))
		if _, err := s.Exercise(ctx, applied.JTI, "ord_a", t0, p.capture); err != nil {
			t.Fatal(err)
		}
		unused := confirm(t, s, sim, m, eur(1000))
		late := confirm(t, s, sim, m, eur(1000))
		if _, err := s.Exercise(ctx, late.JTI, "ord_l", t0, p.capture); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Compensate(ctx, late.JTI, "ord_l", "stock", t0.Add(20*24*time.Hour), p.releaseFunc); err != nil {
			t.Fatal(err)
		}
		exp := applied.ExpiresAt
		for _, now := range []time.Time{t0, exp.Add(time.Minute), exp.Add(retention - time.Second)} {
			if got := purgeAt(t, s, now); got != (capabilitysql.Purged{}) {
				t.Fatalf("purge at %v (inside the retention) deleted %+v", now, got)
			}
		}
		if got := purgeAt(t, s, exp.Add(retention+time.Second)); got != (capabilitysql.Purged{Confirmations: 2, Exercises: 1}) {
			t.Fatalf("purge past the retention deleted %+v, want the applied and the unused token's rows", got)
		}
		if _, err := s.Confirmation(ctx, late.JTI); err != nil {
			t.Errorf("the late-compensated token was purged before its retention: %v", err)
		}
		captures, releases := p.captures.Load(), p.release.Load()
		later := exp.Add(retention + time.Hour)
		if _, err := s.Exercise(ctx, applied.JTI, "ord_a", later, p.capture); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Exercise retried after the purge = %v, want ErrNotFound", err)
		}
		if _, err := s.Compensate(ctx, applied.JTI, "ord_a", "late", later, p.releaseFunc); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Compensate after the purge = %v, want ErrNotFound", err)
		}
		if _, err := s.Compensate(ctx, unused.JTI, "ord_u", "late", later, p.releaseFunc); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Compensate of a purged unused token = %v, want ErrNotFound", err)
		}
		if p.captures.Load() != captures || p.release.Load() != releases {
			t.Errorf("the processor was called for a purged token")
		}
		if _, err := s.PaymentMethod(ctx, m.ID); err != nil {
			t.Errorf("payment method after the purge: %v", err)
		}
	})
}

// TestConcurrentPurges runs two purges at once, as two replicas do: every
// row is deleted once and neither purge fails.
func TestConcurrentPurges(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		s := newStore(t, db)
		sim, _ := newSim(t, db)
		p := &counting{sim: sim}
		m := addMethod(t, s, sim, "usr_c", adapters.SimCardApprove, "")
		const tokens = 30
		for i := range tokens {
			c := confirm(t, s, sim, m, eur(100))
			if i%2 == 0 {
				if _, err := s.Exercise(t.Context(), c.JTI, fmt.Sprint("ord_", i), t0, p.capture); err != nil {
					t.Fatal(err)
				}
			}
		}
		before := t0.Add(time.Hour)
		var wg sync.WaitGroup
		got := make([]capabilitysql.Purged, 2)
		errs := make([]error, 2)
		for i := range got {
			wg.Go(func() { got[i], errs[i] = s.Purge(t.Context(), before) })
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
