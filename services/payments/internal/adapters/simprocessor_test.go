package adapters_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

func tokenize(t *testing.T, p *adapters.SimProcessor, pan string) string {
	t.Helper()
	card, err := domain.ParseCard(pan)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := p.Tokenize(t.Context(), card, "")
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestSimProcessor checks the documented behaviour of every test card and the
// idempotency of every call, on SQLite and PostgreSQL.
func TestSimProcessor(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		p, err := adapters.NewSimProcessor(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()

		t.Run("approving card: authorize, capture, refund, each idempotent", func(t *testing.T) {
			ref := tokenize(t, p, adapters.SimCardApprove)
			auth, err := p.Authorize(ctx, ref, eur(1200), "k-approve")
			if err != nil {
				t.Fatal(err)
			}
			if again, err := p.Authorize(ctx, ref, eur(1200), "k-approve"); err != nil || again != auth {
				t.Fatalf("Authorize retry = %s, %v; want %s", again, err, auth)
			}
			if _, err := p.Authorize(ctx, ref, eur(1300), "k-approve"); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other amount: %v", err)
			}
			if _, err := p.Refund(ctx, auth); err == nil {
				t.Fatal("refunded a hold that was never captured")
			}
			capture, err := p.Capture(ctx, auth)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := p.Capture(ctx, auth); err != nil || again != capture {
				t.Fatalf("Capture retry = %s, %v; want %s", again, err, capture)
			}
			if err := p.Void(ctx, auth); !errors.Is(err, domain.ErrHoldCaptured) {
				t.Fatalf("Void of a captured hold: %v, want ErrHoldCaptured", err)
			}
			refund, err := p.Refund(ctx, auth)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := p.Refund(ctx, auth); err != nil || again != refund {
				t.Fatalf("Refund retry = %s, %v; want %s", again, err, refund)
			}
			if again, err := p.Capture(ctx, auth); err != nil || again != capture {
				t.Fatalf("Capture after refund = %s, %v; want the old capture %s", again, err, capture)
			}
		})

		t.Run("void is idempotent and final", func(t *testing.T) {
			auth, err := p.Authorize(ctx, tokenize(t, p, "5555555555554444"), eur(50), "k-void")
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := p.Void(ctx, auth); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := p.Capture(ctx, auth); !errors.Is(err, domain.ErrVoided) {
				t.Fatalf("Capture of a voided hold: %v, want ErrVoided", err)
			}
		})

		t.Run("declining card", func(t *testing.T) {
			ref := tokenize(t, p, adapters.SimCardDecline)
			if _, err := p.Authorize(ctx, ref, eur(100), "k-decline"); !errors.Is(err, domain.ErrDeclined) {
				t.Fatalf("Authorize: %v, want ErrDeclined", err)
			}
		})

		t.Run("card whose captures fail", func(t *testing.T) {
			auth, err := p.Authorize(ctx, tokenize(t, p, adapters.SimCardFailCapture), eur(100), "k-fail")
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := p.Capture(ctx, auth); !errors.Is(err, domain.ErrCaptureFailed) {
					t.Fatalf("Capture: %v, want ErrCaptureFailed", err)
				}
			}
			if err := p.Void(ctx, auth); err != nil {
				t.Fatalf("Void: %v", err)
			}
		})

		// The timeout card waits for whichever ends first, the caller's
		// deadline or the simulation's own bound. Each case makes the other
		// unreachable (SetTimeout), so what ended the wait is known by
		// construction, not by measuring how long it took: a wait that
		// ignored the deciding bound would hang the test instead of passing.
		t.Run("card that times out: the caller's deadline ends the wait", func(t *testing.T) {
			p, err := adapters.NewSimProcessor(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			p.SetTimeout(24 * time.Hour)
			ref := tokenize(t, p, adapters.SimCardTimeout)
			const deadline = 100 * time.Millisecond
			start := time.Now() // before the deadline is set: took >= deadline, however slow the machine
			ctx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			_, err = p.Authorize(ctx, ref, eur(100), "k-timeout")
			if !errors.Is(err, domain.ErrProcessorUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Authorize: %v, want ErrProcessorUnavailable after the deadline", err)
			}
			if took := time.Since(start); took < deadline {
				t.Fatalf("Authorize returned after %v, before the deadline of %v", took, deadline)
			}
		})

		t.Run("card that times out: without a deadline, the simulation's bound ends the wait", func(t *testing.T) {
			p, err := adapters.NewSimProcessor(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			p.SetTimeout(time.Millisecond)
			ref := tokenize(t, p, adapters.SimCardTimeout)
			if _, ok := ctx.Deadline(); ok {
				t.Fatal("the test's context has a deadline")
			}
			_, err = p.Authorize(ctx, ref, eur(100), "k-timeout-bound")
			if !errors.Is(err, domain.ErrProcessorUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Authorize: %v, want ErrProcessorUnavailable after SimTimeout", err)
			}
		})

		t.Run("tokenize is idempotent by key", func(t *testing.T) {
			visa, err := domain.ParseCard(adapters.SimCardApprove)
			if err != nil {
				t.Fatal(err)
			}
			mastercard, err := domain.ParseCard("5555555555554444")
			if err != nil {
				t.Fatal(err)
			}
			ref, err := p.Tokenize(ctx, visa, "k-card")
			if err != nil {
				t.Fatal(err)
			}
			if again, err := p.Tokenize(ctx, visa, "k-card"); err != nil || again != ref {
				t.Fatalf("Tokenize retry = %s, %v; want %s", again, err, ref)
			}
			if _, err := p.Tokenize(ctx, mastercard, "k-card"); !errors.Is(err, domain.ErrIdempotencyConflict) {
				t.Fatalf("same key, other card: %v, want ErrIdempotencyConflict", err)
			}
			if other, err := p.Tokenize(ctx, visa, "k-card-2"); err != nil || other == ref {
				t.Fatalf("another key = %s, %v; want a new reference", other, err)
			}
		})

		t.Run("unknown references", func(t *testing.T) {
			if _, err := p.Authorize(ctx, "card_nope", eur(1), "k-nope"); err == nil {
				t.Fatal("authorized an unknown card")
			}
			if _, err := p.Capture(ctx, "auth_nope"); err == nil {
				t.Fatal("captured an unknown hold")
			}
		})

		t.Run("holds survive a restart", func(t *testing.T) {
			auth, err := p.Authorize(ctx, tokenize(t, p, adapters.SimCardApprove), eur(75), "k-restart")
			if err != nil {
				t.Fatal(err)
			}
			restarted, err := adapters.NewSimProcessor(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := restarted.Capture(ctx, auth); err != nil {
				t.Fatalf("Capture after restart: %v", err)
			}
		})
	})
}
