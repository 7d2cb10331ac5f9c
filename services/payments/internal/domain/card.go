package domain

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Brand is a card network, derived from the card number's leading digits
// (its IIN).
type Brand string

// The brands Payments recognises. Any other valid card number is
// BrandUnknown; it is still accepted, the processor decides.
const (
	BrandVisa       Brand = "visa"
	BrandMastercard Brand = "mastercard"
	BrandAmex       Brand = "amex"
	BrandDiscover   Brand = "discover"
	BrandUnknown    Brand = "unknown"
)

// Card-number bounds (ISO/IEC 7812 allows 8 to 19 digits; networks issue 12
// and more).
const (
	MinCardDigits = 12
	MaxCardDigits = 19
)

// MaxLabel bounds a payment method's label, in characters.
const MaxLabel = 40

// MaxExpiryYears bounds how far in the future an expiry year may be; issuers
// stay well inside it, so a larger year is a typo.
const MaxExpiryYears = 20

// Card is a card number on its way to the processor, with what Payments may
// keep of it. It never prints its number: every fmt verb, and therefore
// every log line, shows only the brand and last four digits, and the number
// is unexported so encoding/json skips it too.
type Card struct {
	number string
	Brand  Brand
	Last4  string
}

// ParseCard checks a card number (digits only, [MinCardDigits] to
// [MaxCardDigits] of them, with a valid Luhn check digit) and derives its
// brand and last four digits. Its errors wrap ErrInvalidArgument and never
// quote the number.
func ParseCard(number string) (Card, error) {
	if len(number) < MinCardDigits || len(number) > MaxCardDigits {
		return Card{}, fmt.Errorf("%w: a card number has %d to %d digits", ErrInvalidArgument, MinCardDigits, MaxCardDigits)
	}
	for i := range len(number) {
		if number[i] < '0' || number[i] > '9' {
			return Card{}, fmt.Errorf("%w: a card number has digits only", ErrInvalidArgument)
		}
	}
	if !Luhn(number) {
		return Card{}, fmt.Errorf("%w: the card number's check digit is wrong", ErrInvalidArgument)
	}
	return Card{number: number, Brand: DetectBrand(number), Last4: number[len(number)-4:]}, nil
}

// Number returns the full card number. Only a [Processor] may call it.
func (c Card) Number() string { return c.number }

// String describes the card without its number, for example
// "visa ending 4242".
func (c Card) String() string { return string(c.Brand) + " ending " + c.Last4 }

// Format prints [Card.String] for every verb, %#v and %d included, so that
// no format string can print the number by accident.
func (c Card) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// Luhn reports whether a string of ASCII digits ends in a valid Luhn (mod
// 10) check digit. It is false for anything that is not all digits.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	double := false // the check digit itself is not doubled
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// DetectBrand names the network of a card number (ASCII digits) by its IIN
// ranges: Visa 4; Mastercard 51–55 and 2221–2720; American Express 34 and
// 37; Discover 6011, 622126–622925, 644–649 and 65. Lengths are not checked:
// the processor knows each network's rules better.
func DetectBrand(digits string) Brand {
	prefix := func(n int) int {
		if len(digits) < n {
			return -1
		}
		v := 0
		for i := range n {
			v = v*10 + int(digits[i]-'0')
		}
		return v
	}
	switch p2, p3, p4, p6 := prefix(2), prefix(3), prefix(4), prefix(6); {
	case prefix(1) == 4:
		return BrandVisa
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return BrandMastercard
	case p2 == 34, p2 == 37:
		return BrandAmex
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649, p6 >= 622126 && p6 <= 622925:
		return BrandDiscover
	}
	return BrandUnknown
}

// ValidateExpiry checks an expiry month and four-digit year: the card must
// not have expired at now (it is valid through the last day of its expiry
// month, UTC) nor expire more than [MaxExpiryYears] from now. Errors wrap
// ErrInvalidArgument.
func ValidateExpiry(month, year int, now time.Time) error {
	switch {
	case month < 1 || month > 12:
		return fmt.Errorf("%w: expiry month must be 1 to 12", ErrInvalidArgument)
	case year < 1000 || year > 9999:
		return fmt.Errorf("%w: expiry year must have four digits", ErrInvalidArgument)
	case expired(month, year, now):
		return fmt.Errorf("%w: the card expired in %02d/%d", ErrInvalidArgument, month, year)
	case year > now.UTC().Year()+MaxExpiryYears:
		return fmt.Errorf("%w: expiry year %d is more than %d years away", ErrInvalidArgument, year, MaxExpiryYears)
	}
	return nil
}

func expired(month, year int, now time.Time) bool {
	now = now.UTC()
	return year < now.Year() || year == now.Year() && month < int(now.Month())
}

// ValidateLabel checks a payment method's label: at most [MaxLabel]
// characters of valid UTF-8 without control characters, because it is shown
// as is in the checkout. Errors wrap ErrInvalidArgument.
func ValidateLabel(label string) error {
	switch {
	case !utf8.ValidString(label):
		return fmt.Errorf("%w: label is not valid UTF-8", ErrInvalidArgument)
	case utf8.RuneCountInString(label) > MaxLabel:
		return fmt.Errorf("%w: label is longer than %d characters", ErrInvalidArgument, MaxLabel)
	}
	for _, r := range label {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: label contains a control character", ErrInvalidArgument)
		}
	}
	return nil
}
