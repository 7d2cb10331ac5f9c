package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

func TestLuhn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		digits string
		want   bool
	}{
		{"4242424242424242", true},
		{"4242424242424241", false},
		{"378282246310005", true},
		{"6011111111111117", true},
		{"79927398713", true}, // the textbook example
		{"79927398710", false},
		{"0", true},
		{"", false},
		{"4242 4242 4242 4242", false},
		{"42424242424242x2", false},
	}
	for _, tt := range tests {
		t.Run(tt.digits, func(t *testing.T) {
			t.Parallel()
			if got := domain.Luhn(tt.digits); got != tt.want {
				t.Fatalf("Luhn(%q) = %v, want %v", tt.digits, got, tt.want)
			}
		})
	}
}

func TestDetectBrand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		digits string
		want   domain.Brand
	}{
		{"4242424242424242", domain.BrandVisa},
		{"4000000000000002", domain.BrandVisa},
		{"5105105105105100", domain.BrandMastercard},
		{"5555555555554444", domain.BrandMastercard},
		{"2221000000000009", domain.BrandMastercard},
		{"2720990000000007", domain.BrandMastercard},
		{"2220990000000000", domain.BrandUnknown}, // just below the 2-series
		{"2721000000000000", domain.BrandUnknown}, // just above it
		{"5000000000000000", domain.BrandUnknown},
		{"5600000000000000", domain.BrandUnknown},
		{"378282246310005", domain.BrandAmex},
		{"340000000000009", domain.BrandAmex},
		{"350000000000000", domain.BrandUnknown},
		{"6011111111111117", domain.BrandDiscover},
		{"6221260000000000", domain.BrandDiscover},
		{"6229250000000000", domain.BrandDiscover},
		{"6221250000000000", domain.BrandUnknown},
		{"6440000000000000", domain.BrandDiscover},
		{"6490000000000000", domain.BrandDiscover},
		{"6500000000000000", domain.BrandDiscover},
		{"6430000000000000", domain.BrandUnknown},
		{"3530111333300000", domain.BrandUnknown}, // JCB: valid, not one we name
		{"1", domain.BrandUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.digits, func(t *testing.T) {
			t.Parallel()
			if got := domain.DetectBrand(tt.digits); got != tt.want {
				t.Fatalf("DetectBrand(%q) = %q, want %q", tt.digits, got, tt.want)
			}
		})
	}
}

func TestParseCard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		number    string
		wantBrand domain.Brand
		wantLast4 string
		wantErr   error
	}{
		{"4242424242424242", domain.BrandVisa, "4242", nil},
		{"378282246310005", domain.BrandAmex, "0005", nil},
		{"000000000000", domain.BrandUnknown, "0000", nil},     // 12 digits, Luhn-valid
		{"4000000000000000006", domain.BrandVisa, "0006", nil}, // 19 digits
		{"00000000000", "", "", domain.ErrInvalidArgument},     // 11 digits
		{"40000000000000000000", "", "", domain.ErrInvalidArgument},
		{"4242424242424241", "", "", domain.ErrInvalidArgument},
		{"4242-4242-4242-4242", "", "", domain.ErrInvalidArgument},
		{"４２４２４２４２４２４２４２４２", "", "", domain.ErrInvalidArgument}, // full-width digits
		{"", "", "", domain.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.number, func(t *testing.T) {
			t.Parallel()
			c, err := domain.ParseCard(tt.number)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseCard: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if tt.number != "" && strings.Contains(err.Error(), tt.number) {
					t.Fatalf("error %q quotes the card number", err)
				}
				return
			}
			if c.Brand != tt.wantBrand || c.Last4 != tt.wantLast4 || c.Number() != tt.number {
				t.Fatalf("ParseCard = %v (number kept: %v), want %s ending %s", c, c.Number() == tt.number, tt.wantBrand, tt.wantLast4)
			}
		})
	}
}

// TestCardNeverPrintsItsNumber guards the promise that no log line or
// message can carry a card number, whatever verb or encoder is used.
func TestCardNeverPrintsItsNumber(t *testing.T) {
	t.Parallel()
	const pan = "4242424242424242"
	c, err := domain.ParseCard(pan)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
		fmt.Fprintf(&out, verb+"\n", c)
	}
	fmt.Fprintln(&out, []domain.Card{c}, struct{ C domain.Card }{c})
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	slog.New(slog.NewTextHandler(&out, nil)).Info("card", "card", c)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("card", "card", c)
	if strings.Contains(out.String(), pan) || strings.Contains(out.String(), fmt.Sprintf("%x", pan)) {
		t.Fatalf("the card number was printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "visa ending 4242") {
		t.Fatalf("the card's description is missing:\n%s", out.String())
	}
}

func TestValidateExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 31, 23, 59, 0, 0, time.UTC)
	tests := []struct {
		name        string
		month, year int
		now         time.Time
		wantErr     error
		wantExpired bool
	}{
		{"this month", 5, 2026, now, nil, false},
		{"next month", 6, 2026, now, nil, false},
		{"last month", 4, 2026, now, domain.ErrInvalidArgument, true},
		{"last year", 12, 2025, now, domain.ErrInvalidArgument, true},
		{"far but allowed", 1, 2046, now, nil, false},
		{"too far", 1, 2047, now, domain.ErrInvalidArgument, false},
		{"month 0", 0, 2027, now, domain.ErrInvalidArgument, false},
		{"month 13", 13, 2027, now, domain.ErrInvalidArgument, false},
		{"two-digit year", 5, 27, now, domain.ErrInvalidArgument, true},
		// Already June in UTC, still May in New York: UTC decides.
		{"UTC month", 5, 2026, time.Date(2026, 5, 31, 21, 0, 0, 0, time.FixedZone("EDT", -4*3600)), domain.ErrInvalidArgument, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := domain.ValidateExpiry(tt.month, tt.year, tt.now); !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateExpiry(%d, %d) = %v, want %v", tt.month, tt.year, err, tt.wantErr)
			}
			m := domain.PaymentMethod{ExpiryMonth: tt.month, ExpiryYear: tt.year}
			if got := m.Expired(tt.now); got != tt.wantExpired {
				t.Fatalf("Expired = %v, want %v", got, tt.wantExpired)
			}
		})
	}
}

func TestValidateLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		label   string
		wantErr error
	}{
		{"", nil},
		{"Work card", nil},
		{strings.Repeat("é", domain.MaxLabel), nil}, // characters, not bytes
		{strings.Repeat("a", domain.MaxLabel+1), domain.ErrInvalidArgument},
		{"line\nbreak", domain.ErrInvalidArgument},
		{"bad \xff utf-8", domain.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			t.Parallel()
			if err := domain.ValidateLabel(tt.label); !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateLabel(%q) = %v, want %v", tt.label, err, tt.wantErr)
			}
		})
	}
}

func TestValidateAmount(t *testing.T) {
	t.Parallel()
	co := domain.Checkout{ID: "op_1", UserID: "usr_1", Total: money.Money{AmountMinor: 5000, Currency: "EUR"}}
	tests := []struct {
		name    string
		amount  money.Money
		wantErr error
	}{
		{"the total", money.Money{AmountMinor: 5000, Currency: "EUR"}, nil},
		{"part of it", money.Money{AmountMinor: 1, Currency: "EUR"}, nil},
		{"over the total", money.Money{AmountMinor: 5001, Currency: "EUR"}, domain.ErrExceedsTotal},
		{"zero", money.Money{AmountMinor: 0, Currency: "EUR"}, domain.ErrInvalidArgument},
		{"negative", money.Money{AmountMinor: -1, Currency: "EUR"}, domain.ErrInvalidArgument},
		{"other currency", money.Money{AmountMinor: 100, Currency: "USD"}, domain.ErrInvalidArgument},
		{"malformed currency", money.Money{AmountMinor: 100, Currency: "eur"}, domain.ErrInvalidArgument},
		{"no currency", money.Money{AmountMinor: 100}, domain.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := domain.ValidateAmount(tt.amount, co); !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateAmount(%v) = %v, want %v", tt.amount, err, tt.wantErr)
			}
		})
	}
}
