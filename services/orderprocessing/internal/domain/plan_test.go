package domain_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// TestPlanRefusals: every refusal of Plan names the check that failed and
// the tokens it concerns, for the audit trail: the one token at fault, or
// all of them when their settlements do not add up; and it still wraps the
// sentinel the RPC maps.
func TestPlanRefusals(t *testing.T) {
	t.Parallel()
	eur := func(minor int64) money.Money { return money.Money{AmountMinor: minor, Currency: "EUR"} }
	co := domain.Checkout{ID: "op_1", UserID: "usr_1", Total: eur(1000)}
	routes := domain.Routes{
		"points:spend":     {Capability: "points:spend", Issuer: "points", Stage: 1},
		"payments:capture": {Capability: "payments:capture", Issuer: "payments", Stage: 2},
	}
	points := domain.Confirmation{Issuer: "points", JTI: "p1", Subject: "usr_1", CheckoutID: "op_1",
		Capabilities: []string{"points:spend"}, Settlement: eur(300)}
	card := domain.Confirmation{Issuer: "payments", JTI: "c1", Subject: "usr_1", CheckoutID: "op_1",
		Capabilities: []string{"payments:capture"}, Settlement: eur(700)}
	if _, err := domain.Plan(co, "usr_1", []domain.Confirmation{points, card}, routes); err != nil {
		t.Fatalf("a valid plan: %v", err)
	}
	with := func(c domain.Confirmation, f func(*domain.Confirmation)) domain.Confirmation {
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		confs []domain.Confirmation
		check string
		jtis  []string
		err   error
	}{
		{"another checkout", []domain.Confirmation{points, with(card, func(c *domain.Confirmation) { c.CheckoutID = "op_2" })}, "checkout", []string{"c1"}, domain.ErrEnvelope},
		{"another user", []domain.Confirmation{with(points, func(c *domain.Confirmation) { c.Subject = "usr_2" }), card}, "subject", []string{"p1"}, domain.ErrEnvelope},
		{"two capabilities", []domain.Confirmation{with(points, func(c *domain.Confirmation) { c.Capabilities = []string{"points:spend", "payments:capture"} }), card}, "capabilities", []string{"p1"}, domain.ErrEnvelope},
		{"no route from its issuer", []domain.Confirmation{points, with(card, func(c *domain.Confirmation) { c.Issuer = "points" })}, "route", []string{"c1"}, domain.ErrEnvelope},
		{"twice the same capability", []domain.Confirmation{points, with(points, func(c *domain.Confirmation) { c.JTI = "p2" })}, "duplicate", []string{"p2"}, domain.ErrEnvelope},
		{"another currency", []domain.Confirmation{points, with(card, func(c *domain.Confirmation) { c.Settlement.Currency = "USD" })}, "settlement", []string{"c1"}, domain.ErrSettlement},
		{"short of the total", []domain.Confirmation{points, with(card, func(c *domain.Confirmation) { c.Settlement = eur(600) })}, "settlement", []string{"p1", "c1"}, domain.ErrSettlement},
	} {
		_, err := domain.Plan(co, "usr_1", tc.confs, routes)
		r, ok := errors.AsType[*domain.RefusedToken](err)
		if !ok || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want a refusal wrapping %v", tc.name, err, tc.err)
			continue
		}
		var jtis []string
		for _, id := range r.Tokens {
			jtis = append(jtis, id.JTI)
		}
		if r.Check != tc.check || !slices.Equal(jtis, tc.jtis) {
			t.Errorf("%s: check %q of %v, want %q of %v", tc.name, r.Check, jtis, tc.check, tc.jtis)
		}
	}
}
