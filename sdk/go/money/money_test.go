package money

import (
	"errors"
	"math"
	"testing"

	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   *typev1.Money
		want Money
		err  error
	}{
		{"valid", &typev1.Money{AmountMinor: 1234, Currency: "EUR"}, Money{1234, "EUR"}, nil},
		{"zero", &typev1.Money{Currency: "JPY"}, Money{0, "JPY"}, nil},
		{"nil", nil, Money{}, ErrAmount},
		{"negative", &typev1.Money{AmountMinor: -1, Currency: "EUR"}, Money{}, ErrAmount},
		{"lower case", &typev1.Money{AmountMinor: 1, Currency: "eur"}, Money{}, ErrCurrency},
		{"empty currency", &typev1.Money{AmountMinor: 1}, Money{}, ErrCurrency},
		{"long currency", &typev1.Money{AmountMinor: 1, Currency: "EURO"}, Money{}, ErrCurrency},
		{"non-ascii", &typev1.Money{AmountMinor: 1, Currency: "EÜR"}, Money{}, ErrCurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Parse(%v) error = %v, want %v", tc.in, err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Fatalf("Parse(%v) = %v, want %v", tc.in, got, tc.want)
			}
			if err == nil && (got.Proto().GetAmountMinor() != tc.in.GetAmountMinor() || got.Proto().GetCurrency() != tc.in.GetCurrency()) {
				t.Fatalf("Proto round trip of %v = %v", tc.in, got.Proto())
			}
		})
	}
}

func TestSum(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []Money
		want Money
		err  error
	}{
		{"one", []Money{{5, "EUR"}}, Money{5, "EUR"}, nil},
		{"several", []Money{{5, "EUR"}, {0, "EUR"}, {995, "EUR"}}, Money{1000, "EUR"}, nil},
		{"empty", nil, Money{}, ErrAmount},
		{"mixed", []Money{{5, "EUR"}, {5, "USD"}}, Money{}, ErrCurrency},
		{"negative", []Money{{5, "EUR"}, {-5, "EUR"}}, Money{}, ErrAmount},
		{"overflow", []Money{{math.MaxInt64, "EUR"}, {1, "EUR"}}, Money{}, ErrAmount},
		{"bad currency", []Money{{1, "eu"}}, Money{}, ErrCurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Sum(tc.in...)
			if !errors.Is(err, tc.err) || (err == nil && got != tc.want) {
				t.Fatalf("Sum(%v) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}
