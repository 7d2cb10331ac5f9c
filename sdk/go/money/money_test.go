package money

import (
	"errors"
	"math"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   Money
		err  error
	}{
		{"valid", Money{1234, "EUR"}, nil},
		{"zero", Money{0, "JPY"}, nil},
		{"negative", Money{-1, "EUR"}, ErrAmount},
		{"lower case", Money{1, "eur"}, ErrCurrency},
		{"empty currency", Money{1, ""}, ErrCurrency},
		{"long currency", Money{1, "EURO"}, ErrCurrency},
		{"non-ascii", Money{1, "EÜR"}, ErrCurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.in.Validate(); !errors.Is(err, tc.err) {
				t.Fatalf("%v.Validate() = %v, want %v", tc.in, err, tc.err)
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
