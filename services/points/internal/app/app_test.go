package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/points/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/points/internal/app"
	"github.com/tokenrelay/tokenrelay/services/points/internal/domain"
)

// fakeIssuer "signs" a token as its jti, and remembers the drafts, so tests
// can build the verified capability.Token the port would produce.
type fakeIssuer struct {
	mu     sync.Mutex
	drafts map[string]capability.Draft
}

func (f *fakeIssuer) IssueConfirmation(_ context.Context, d capability.Draft) (capability.Issued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	jti := ids.New("")
	f.drafts[jti] = d
	return capability.Issued{Token: "tok." + jti, JTI: jti, ExpiresAt: time.Now().Add(2 * time.Minute)}, nil
}

func (f *fakeIssuer) token(t *testing.T, raw string) capability.Token {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	jti := raw[len("tok."):]
	d, ok := f.drafts[jti]
	if !ok {
		t.Fatalf("token %q was not issued", raw)
	}
	return capability.Token{JTI: jti, Issuer: "points", Subject: d.Subject, CheckoutID: d.CheckoutID,
		Capabilities: []string{d.Capability}, Constraints: d.Constraints, Settlement: d.Settlement}
}

// plainSealer marks sealed text and checks the record id, like AAD would.
type plainSealer struct{}

func (plainSealer) Seal(id, p string) (string, error) { return id + "|" + p, nil }
func (plainSealer) Open(id, s string) (string, error) {
	if len(s) < len(id)+1 || s[:len(id)+1] != id+"|" {
		return "", errors.New("wrong record id")
	}
	return s[len(id)+1:], nil
}

type fixture struct {
	svc    *app.Service
	issuer *fakeIssuer
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	store, err := adapters.NewStore(t.Context(), sqldbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	issuer := &fakeIssuer{drafts: map[string]capability.Draft{}}
	return fixture{svc: app.New(store, issuer, plainSealer{}, nil), issuer: issuer}
}

var (
	admin   = app.Caller{UserID: "usr_admin", Admin: true}
	alice   = app.Caller{UserID: "usr_alice"}
	bob     = app.Caller{UserID: "usr_bob"}
	aliceCO = domain.Checkout{ID: "op_alice", UserID: "usr_alice", Total: money.Money{AmountMinor: 5000, Currency: "EUR"}}
)

func (f fixture) balance(t *testing.T, c app.Caller) int64 {
	t.Helper()
	b, _, err := f.svc.Balance(t.Context(), c, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfirmExerciseCompensate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.svc.Grant(ctx, admin, alice.UserID, 1000, "welcome", "g1"); err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.Confirm(ctx, alice, aliceCO, 300, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Value != (money.Money{AmountMinor: 300, Currency: "EUR"}) || c.RemainingBalance != 700 {
		t.Fatalf("Confirm = %+v", c)
	}
	retry, err := f.svc.Confirm(ctx, alice, aliceCO, 300, "c1")
	if err != nil || retry.Token != c.Token {
		t.Fatalf("retry = %+v, %v; want the same token", retry, err)
	}
	if f.balance(t, alice) != 1000 {
		t.Fatal("confirming spent points")
	}
	tok := f.issuer.token(t, c.Token)
	x, err := f.svc.Exercise(ctx, tok, "ord_1")
	if err != nil || x.State != domain.ExerciseApplied {
		t.Fatalf("Exercise = %+v, %v", x, err)
	}
	if f.balance(t, alice) != 700 {
		t.Fatalf("balance after exercise = %d", f.balance(t, alice))
	}
	if _, err := f.svc.Compensate(ctx, tok, "ord_1", "payment failed"); err != nil {
		t.Fatal(err)
	}
	if f.balance(t, alice) != 1000 {
		t.Fatalf("balance after compensation = %d", f.balance(t, alice))
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.svc.Grant(ctx, admin, alice.UserID, 1000, "", ""); err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.Confirm(ctx, alice, aliceCO, 100, "k")
	if err != nil {
		t.Fatal(err)
	}
	good := f.issuer.token(t, c.Token)
	tampered := func(mod func(*capability.Token)) capability.Token {
		tok := good
		tok.Constraints = map[string]string{}
		for k, v := range good.Constraints {
			tok.Constraints[k] = v
		}
		mod(&tok)
		return tok
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"grant without admin", func() error { _, err := f.svc.Grant(ctx, alice, alice.UserID, 1, "", ""); return err }, domain.ErrPermissionDenied},
		{"grant zero", func() error { _, err := f.svc.Grant(ctx, admin, alice.UserID, 0, "", ""); return err }, domain.ErrInvalidArgument},
		{"grant too many", func() error { _, err := f.svc.Grant(ctx, admin, alice.UserID, domain.MaxGrant+1, "", ""); return err }, domain.ErrInvalidArgument},
		{"grant no user", func() error { _, err := f.svc.Grant(ctx, admin, "", 1, "", ""); return err }, domain.ErrInvalidArgument},
		{"recent out of range", func() error { _, _, err := f.svc.Balance(ctx, alice, 101); return err }, domain.ErrInvalidArgument},
		{"zero points", func() error { _, err := f.svc.Confirm(ctx, alice, aliceCO, 0, ""); return err }, domain.ErrInvalidArgument},
		{"negative points", func() error { _, err := f.svc.Confirm(ctx, alice, aliceCO, -5, ""); return err }, domain.ErrInvalidArgument},
		{"more than balance", func() error { _, err := f.svc.Confirm(ctx, alice, aliceCO, 1001, ""); return err }, domain.ErrInsufficientPoints},
		{"more than total", func() error {
			small := aliceCO
			small.Total.AmountMinor = 50
			_, err := f.svc.Confirm(ctx, alice, small, 51, "")
			return err
		}, domain.ErrExceedsTotal},
		{"someone else's checkout", func() error { _, err := f.svc.Confirm(ctx, bob, aliceCO, 1, ""); return err }, domain.ErrPermissionDenied},
		{"key reused for other points", func() error { _, err := f.svc.Confirm(ctx, alice, aliceCO, 101, "k"); return err }, domain.ErrIdempotencyConflict},
		{"exercise without order", func() error { _, err := f.svc.Exercise(ctx, good, ""); return err }, domain.ErrInvalidArgument},
		{"foreign capability", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.Capabilities = []string{"coupons:redeem"} }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"two capabilities", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.Capabilities = append(t.Capabilities, "points:grant") }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"other subject", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.Subject = bob.UserID }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"other checkout", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.CheckoutID = "op_other" }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"inflated settlement", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.Settlement.AmountMinor++ }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"other constraints", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.Constraints["points_sha256"] = "00" }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"unknown jti", func() error {
			_, err := f.svc.Exercise(ctx, tampered(func(t *capability.Token) { t.JTI = "unknown" }), "ord_x")
			return err
		}, domain.ErrMismatch},
		{"long reason", func() error { _, err := f.svc.Compensate(ctx, good, "ord_x", string(make([]byte, 201))); return err }, domain.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
	// Nothing above changed the ledger.
	if b := f.balance(t, alice); b != 1000 {
		t.Fatalf("balance = %d after refused requests, want 1000", b)
	}
}

// TestConcurrentConfirmedSpends confirms 200 spends (each fits the balance
// alone) and exercises them concurrently: the balance never goes negative.
func TestConcurrentConfirmedSpends(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.svc.Grant(ctx, admin, alice.UserID, 500, "", ""); err != nil {
		t.Fatal(err)
	}
	toks := make([]capability.Token, 200)
	for i := range toks {
		c, err := f.svc.Confirm(ctx, alice, aliceCO, 3, "")
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = f.issuer.token(t, c.Token)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	spent := 0
	for i, tok := range toks {
		wg.Go(func() {
			_, err := f.svc.Exercise(context.Background(), tok, fmt.Sprintf("ord_%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				spent++
			case !errors.Is(err, domain.ErrInsufficientPoints):
				t.Errorf("exercise: %v", err)
			}
		})
	}
	wg.Wait()
	if b := f.balance(t, alice); spent != 166 || b != 500-3*166 {
		t.Fatalf("%d spends, balance %d; want 166 spends and balance %d", spent, b, 500-3*166)
	}
}
