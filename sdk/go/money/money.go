// Package money is the one money type of tokenrelay: an amount in integer
// minor units of one ISO 4217 currency, with the checks every service needs
// (the conversion to and from the wire type is package moneypb's, so that
// domain code depends on no generated code).
//
// There is no floating point anywhere: 12.34 EUR is {1234, "EUR"}. Amounts of
// different currencies are never added; [Sum] refuses them.
package money

import (
	"errors"
	"fmt"
	"math"
)

// Errors returned by [Money.Validate] and [Sum]; test with errors.Is.
var (
	// ErrCurrency reports a missing or malformed currency code, or amounts
	// of different currencies.
	ErrCurrency = errors.New("money: invalid currency")
	// ErrAmount reports a negative amount or an overflow.
	ErrAmount = errors.New("money: invalid amount")
)

// Money is an amount in minor units of one currency.
type Money struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// String formats m for logs and messages, for example "1234 EUR".
func (m Money) String() string { return fmt.Sprintf("%d %s", m.AmountMinor, m.Currency) }

// ValidCurrency reports whether code has the shape of an ISO 4217 alphabetic
// code: three upper-case ASCII letters. Which codes a service accepts is its
// own business; the shape is everyone's.
func ValidCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	for i := range 3 {
		if code[i] < 'A' || code[i] > 'Z' {
			return false
		}
	}
	return true
}

// Validate checks that m has a valid currency and a non-negative amount.
func (m Money) Validate() error {
	if !ValidCurrency(m.Currency) {
		return fmt.Errorf("%w: %q is not an ISO 4217 code", ErrCurrency, m.Currency)
	}
	if m.AmountMinor < 0 {
		return fmt.Errorf("%w: %d is negative", ErrAmount, m.AmountMinor)
	}
	return nil
}

// Sum adds amounts of one currency. It refuses an empty list, mixed
// currencies, negative amounts and overflow.
func Sum(ms ...Money) (Money, error) {
	if len(ms) == 0 {
		return Money{}, fmt.Errorf("%w: nothing to add", ErrAmount)
	}
	total := Money{Currency: ms[0].Currency}
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			return Money{}, err
		}
		if m.Currency != total.Currency {
			return Money{}, fmt.Errorf("%w: %s and %s", ErrCurrency, total.Currency, m.Currency)
		}
		if m.AmountMinor > math.MaxInt64-total.AmountMinor {
			return Money{}, fmt.Errorf("%w: overflow", ErrAmount)
		}
		total.AmountMinor += m.AmountMinor
	}
	return total, nil
}
