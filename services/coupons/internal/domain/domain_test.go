package domain_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/domain"
)

var (
	from  = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

func fixed(off, minimum int64) domain.Campaign {
	return domain.Campaign{Code: "FIXED-5", Kind: domain.DiscountFixed, AmountOff: off, MinimumSpend: minimum,
		Currency: "EUR", ValidFrom: from, ValidUntil: until}
}

func percent(bps int32) domain.Campaign {
	return domain.Campaign{Code: "PCT", Kind: domain.DiscountPercent, PercentOffBPS: bps,
		Currency: "EUR", ValidFrom: from, ValidUntil: until}
}

func TestDiscount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		campaign domain.Campaign
		total    int64
		want     int64
	}{
		{"fixed below total", fixed(500, 0), 2000, 500},
		{"fixed equal to total", fixed(500, 0), 500, 500},
		{"fixed capped at total", fixed(500, 0), 499, 499},
		{"fixed on zero total", fixed(500, 0), 0, 0},
		{"ten percent exact", percent(1000), 2000, 200},
		{"ten percent rounds down", percent(1000), 1999, 199},
		{"one basis point rounds down to zero", percent(1), 9999, 0},
		{"one basis point of 10000", percent(1), 10000, 1},
		{"33.33 percent rounds down", percent(3333), 100, 33},
		{"hundred percent is the total", percent(10000), 1234, 1234},
		{"percent of the largest total does not overflow", percent(9999), math.MaxInt64,
			math.MaxInt64/10000*9999 + math.MaxInt64%10000*9999/10000},
		{"hundred percent of the largest total", percent(10000), math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.campaign.Discount(tt.total); got != tt.want {
				t.Fatalf("Discount(%d) = %d, want %d", tt.total, got, tt.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	eur := func(n int64) money.Money { return money.Money{AmountMinor: n, Currency: "EUR"} }
	available := domain.Coupon{State: domain.CouponAvailable, Campaign: fixed(500, 1000)}
	redeemed := available
	redeemed.State = domain.CouponRedeemed
	mid := from.Add(24 * time.Hour)
	tests := []struct {
		name   string
		coupon domain.Coupon
		now    time.Time
		total  money.Money
		want   domain.Reason
		off    int64
	}{
		{"usable", available, mid, eur(2000), domain.ReasonNone, 500},
		{"first instant of the window", available, from, eur(2000), domain.ReasonNone, 500},
		{"last instant before the end", available, until.Add(-time.Nanosecond), eur(2000), domain.ReasonNone, 500},
		{"just before the window", available, from.Add(-time.Nanosecond), eur(2000), domain.ReasonNotYetValid, 0},
		{"end of the window is excluded", available, until, eur(2000), domain.ReasonExpired, 0},
		{"already used", redeemed, mid, eur(2000), domain.ReasonAlreadyUsed, 0},
		{"used wins over expired", redeemed, until, eur(2000), domain.ReasonAlreadyUsed, 0},
		{"exactly the minimum spend", available, mid, eur(1000), domain.ReasonNone, 500},
		{"below the minimum spend", available, mid, eur(999), domain.ReasonBelowMinimumSpend, 0},
		{"no minimum, zero total", domain.Coupon{State: domain.CouponAvailable, Campaign: fixed(500, 0)}, mid, eur(0),
			domain.ReasonBelowMinimumSpend, 0},
		{"percentage rounding to nothing", domain.Coupon{State: domain.CouponAvailable, Campaign: percent(1)}, mid, eur(9999),
			domain.ReasonBelowMinimumSpend, 0},
		{"percentage rounding to one unit", domain.Coupon{State: domain.CouponAvailable, Campaign: percent(1)}, mid, eur(10000),
			domain.ReasonNone, 1},
		{"other currency", available, mid, money.Money{AmountMinor: 5000, Currency: "USD"}, domain.ReasonCurrencyMismatch, 0},
		{"currency checked before minimum", available, mid, money.Money{AmountMinor: 1, Currency: "USD"}, domain.ReasonCurrencyMismatch, 0},
		{"expired checked before currency", available, until, money.Money{AmountMinor: 1, Currency: "USD"}, domain.ReasonExpired, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			off, got := tt.coupon.Apply(tt.now, tt.total)
			if got != tt.want || off.AmountMinor != tt.off {
				t.Fatalf("Apply = %v, %v; want %d, %v", off, got, tt.off, tt.want)
			}
			if got == domain.ReasonNone && off.Currency != tt.total.Currency {
				t.Fatalf("discount currency %q, want %q", off.Currency, tt.total.Currency)
			}
			if got := tt.coupon.Availability(tt.now); got != tt.want && tt.want != domain.ReasonBelowMinimumSpend &&
				tt.want != domain.ReasonCurrencyMismatch {
				t.Fatalf("Availability = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReasonErr(t *testing.T) {
	t.Parallel()
	if err := domain.ReasonNone.Err(); err != nil {
		t.Fatalf("ReasonNone.Err() = %v", err)
	}
	err := fmt.Errorf("exercise: %w", domain.ReasonExpired.Err())
	if !errors.Is(err, domain.ErrUnusable) {
		t.Fatalf("%v is not ErrUnusable", err)
	}
	ue, ok := errors.AsType[*domain.UnusableError](err)
	if !ok || ue.Reason != domain.ReasonExpired {
		t.Fatalf("AsType = %v, %v", ue, ok)
	}
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("message %q does not say why", err)
	}
}

func TestCampaignValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*domain.Campaign)
		ok     bool
	}{
		{"fixed", func(*domain.Campaign) {}, true},
		{"percent", func(c *domain.Campaign) { *c = percent(1000) }, true},
		{"code of 3", func(c *domain.Campaign) { c.Code = "A-1" }, true},
		{"code of 32", func(c *domain.Campaign) { c.Code = strings.Repeat("Z", 32) }, true},
		{"code of 2", func(c *domain.Campaign) { c.Code = "AB" }, false},
		{"code of 33", func(c *domain.Campaign) { c.Code = strings.Repeat("Z", 33) }, false},
		{"lower-case code", func(c *domain.Campaign) { c.Code = "spring" }, false},
		{"code with a space", func(c *domain.Campaign) { c.Code = "SPR ING" }, false},
		{"code with an underscore", func(c *domain.Campaign) { c.Code = "SPR_ING" }, false},
		{"non-ASCII code", func(c *domain.Campaign) { c.Code = "SPRÍNG" }, false},
		{"description of 120 characters", func(c *domain.Campaign) { c.Description = strings.Repeat("é", 120) }, true},
		{"description of 121 characters", func(c *domain.Campaign) { c.Description = strings.Repeat("e", 121) }, false},
		{"description not UTF-8", func(c *domain.Campaign) { c.Description = "\xff" }, false},
		{"lower-case currency", func(c *domain.Campaign) { c.Currency = "eur" }, false},
		{"two-letter currency", func(c *domain.Campaign) { c.Currency = "EU" }, false},
		{"no currency", func(c *domain.Campaign) { c.Currency = "" }, false},
		{"negative minimum", func(c *domain.Campaign) { c.MinimumSpend = -1 }, false},
		{"fixed without amount", func(c *domain.Campaign) { c.AmountOff = 0 }, false},
		{"fixed with a percentage", func(c *domain.Campaign) { c.PercentOffBPS = 10 }, false},
		{"percent of 0", func(c *domain.Campaign) { *c = percent(0) }, false},
		{"percent of 1", func(c *domain.Campaign) { *c = percent(1) }, true},
		{"percent of 10000", func(c *domain.Campaign) { *c = percent(10000) }, true},
		{"percent of 10001", func(c *domain.Campaign) { *c = percent(10001) }, false},
		{"percent with an amount", func(c *domain.Campaign) { *c = percent(10); c.AmountOff = 5 }, false},
		{"unknown kind", func(c *domain.Campaign) { c.Kind = 0 }, false},
		{"no start", func(c *domain.Campaign) { c.ValidFrom = time.Time{} }, false},
		{"no end", func(c *domain.Campaign) { c.ValidUntil = time.Time{} }, false},
		{"empty window", func(c *domain.Campaign) { c.ValidUntil = c.ValidFrom }, false},
		{"reversed window", func(c *domain.Campaign) { c.ValidFrom, c.ValidUntil = c.ValidUntil, c.ValidFrom }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := fixed(500, 0)
			tt.change(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, domain.ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestCanonicalSameTerms(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	c := fixed(500, 0)
	c.ValidFrom = from.In(paris).Add(999 * time.Nanosecond)
	got := c.Canonical()
	if got.ValidFrom.Location() != time.UTC || !got.ValidFrom.Equal(from) {
		t.Fatalf("Canonical ValidFrom = %v, want %v", got.ValidFrom, from)
	}
	if !got.SameTerms(fixed(500, 0)) {
		t.Fatal("canonical campaign differs from the same terms")
	}
	other := fixed(500, 0)
	other.MinimumSpend = 1
	if got.SameTerms(other) {
		t.Fatal("campaigns with different minimum spends have the same terms")
	}
}
