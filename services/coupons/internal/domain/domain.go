// Package domain holds the Coupons rules: campaigns (a fixed amount or a
// percentage off, a minimum spend, one currency and a validity window), the
// coupons granted to users (each user may use a campaign once), and the record
// of every confirmation token Coupons issued and exercised.
//
// It is pure: no I/O, no Connect codes. Errors are sentinels (and the typed
// [UnusableError]) that the ports map.
package domain

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Capability is the one capability Coupons grants.
const Capability = "coupons:redeem"

// Campaign limits.
const (
	MinCodeLen        = 3
	MaxCodeLen        = 32
	MaxDescriptionLen = 120   // characters
	MaxPercentOffBPS  = 10000 // 100 %
)

// Sentinel errors. Wrap them with %w to add detail; the ports map each to a
// Connect code in one place. Those every domain shares are capability's.
var (
	// ErrInvalidArgument reports a malformed request (InvalidArgument).
	ErrInvalidArgument = capability.ErrInvalidArgument
	// ErrNotFound reports an unknown coupon code or confirmation (NotFound).
	ErrNotFound = capability.ErrNotFound
	// ErrPermissionDenied reports an action on someone else's resource or
	// without the admin scope (PermissionDenied).
	ErrPermissionDenied = capability.ErrPermissionDenied
	// ErrCampaignConflict reports a campaign code already used with other
	// terms (AlreadyExists).
	ErrCampaignConflict = errors.New("a campaign with this code exists with other terms")
	// ErrUnusable reports a coupon that cannot be used now, for this checkout
	// (FailedPrecondition). It is always carried by an [UnusableError], which
	// says why.
	ErrUnusable = errors.New("coupon cannot be used")
	// ErrAlreadyExercised reports a confirmation exercised for another order
	// (AlreadyExists).
	ErrAlreadyExercised = capability.ErrAlreadyExercised
	// ErrVoided reports a confirmation compensated before it was exercised;
	// it can never be exercised (FailedPrecondition).
	ErrVoided = capability.ErrVoided
	// ErrMismatch reports a token whose claims disagree with the record
	// Coupons keeps for it (PermissionDenied: it is not a token Coupons
	// issued so).
	ErrMismatch = capability.ErrMismatch
	// ErrIdempotencyConflict reports an idempotency key reused with another
	// request (InvalidArgument).
	ErrIdempotencyConflict = capability.ErrIdempotencyConflict
)

// Reason says why a coupon cannot be used; ReasonNone means it can. The
// values follow the wire enum UnusableReason.
type Reason int

// The reasons. See [Coupon.Apply] for the order they are checked in.
const (
	ReasonNone Reason = iota
	ReasonNotYetValid
	ReasonExpired
	ReasonAlreadyUsed
	ReasonBelowMinimumSpend
	ReasonCurrencyMismatch
)

// String names the reason for messages.
func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "usable"
	case ReasonNotYetValid:
		return "not yet valid"
	case ReasonExpired:
		return "expired"
	case ReasonAlreadyUsed:
		return "already used"
	case ReasonBelowMinimumSpend:
		return "below the minimum spend"
	case ReasonCurrencyMismatch:
		return "currency mismatch"
	default:
		return fmt.Sprintf("Reason(%d)", int(r))
	}
}

// Err returns the error refusing a coupon for r, or nil for ReasonNone.
func (r Reason) Err() error {
	if r == ReasonNone {
		return nil
	}
	return &UnusableError{Reason: r}
}

// UnusableError refuses a coupon and says why, so that the ports can put the
// reason into the error details. errors.Is(err, ErrUnusable) holds for it.
type UnusableError struct {
	Reason Reason
}

func (e *UnusableError) Error() string { return ErrUnusable.Error() + ": " + e.Reason.String() }

// Is makes every UnusableError match ErrUnusable.
func (e *UnusableError) Is(target error) bool { return target == ErrUnusable }

// DiscountKind says how a campaign computes its discount.
type DiscountKind int

// The discount kinds; the values follow the wire enum DiscountKind.
const (
	DiscountFixed DiscountKind = iota + 1
	DiscountPercent
)

// Campaign is the terms shared by the coupons of one promotion. All amounts
// are minor units of Currency.
type Campaign struct {
	Code          string
	Description   string
	Kind          DiscountKind
	AmountOff     int64 // DiscountFixed only
	PercentOffBPS int32 // DiscountPercent only; 1000 = 10 %
	MinimumSpend  int64 // 0 means no minimum
	Currency      string
	ValidFrom     time.Time // inclusive
	ValidUntil    time.Time // exclusive
}

// Canonical returns c with its window in UTC at microsecond precision, the
// precision PostgreSQL keeps, so that a campaign compares equal to itself
// after a round trip through either store.
func (c Campaign) Canonical() Campaign {
	c.ValidFrom = c.ValidFrom.UTC().Truncate(time.Microsecond)
	c.ValidUntil = c.ValidUntil.UTC().Truncate(time.Microsecond)
	return c
}

// SameTerms reports whether c and o are the same campaign in every field: a
// code names one set of terms forever, so that two users holding "SPRING-10"
// hold the same offer.
func (c Campaign) SameTerms(o Campaign) bool {
	return c.Code == o.Code && c.Description == o.Description && c.Kind == o.Kind &&
		c.AmountOff == o.AmountOff && c.PercentOffBPS == o.PercentOffBPS &&
		c.MinimumSpend == o.MinimumSpend && c.Currency == o.Currency &&
		c.ValidFrom.Equal(o.ValidFrom) && c.ValidUntil.Equal(o.ValidUntil)
}

// ValidCode reports whether code is 3 to 32 characters of A-Z, 0-9 and '-'.
func ValidCode(code string) bool {
	if len(code) < MinCodeLen || len(code) > MaxCodeLen {
		return false
	}
	for i := range len(code) {
		if ch := code[i]; (ch < 'A' || ch > 'Z') && (ch < '0' || ch > '9') && ch != '-' {
			return false
		}
	}
	return true
}

// Validate checks that c is a campaign Coupons can run.
func (c Campaign) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: campaign: "+format, append([]any{ErrInvalidArgument}, args...)...)
	}
	switch {
	case !ValidCode(c.Code):
		return bad("code must be %d to %d characters of A-Z, 0-9 and '-'", MinCodeLen, MaxCodeLen)
	case !utf8.ValidString(c.Description) || utf8.RuneCountInString(c.Description) > MaxDescriptionLen:
		return bad("description must be valid UTF-8 of at most %d characters", MaxDescriptionLen)
	case !money.ValidCurrency(c.Currency):
		return bad("currency %q is not an ISO 4217 code", c.Currency)
	case c.MinimumSpend < 0:
		return bad("minimum spend must not be negative")
	case c.ValidFrom.IsZero() || c.ValidUntil.IsZero():
		return bad("valid_from and valid_until are required")
	case !c.ValidFrom.Before(c.ValidUntil):
		return bad("valid_from must be before valid_until")
	}
	switch c.Kind {
	case DiscountFixed:
		if c.AmountOff <= 0 || c.PercentOffBPS != 0 {
			return bad("a fixed discount needs a positive amount off and no percentage")
		}
	case DiscountPercent:
		if c.PercentOffBPS < 1 || c.PercentOffBPS > MaxPercentOffBPS || c.AmountOff != 0 {
			return bad("a percentage discount needs 1 to %d basis points and no amount off", MaxPercentOffBPS)
		}
	default:
		return bad("unknown discount kind %d", int(c.Kind))
	}
	return nil
}

// Window says whether now is inside the campaign's validity window
// [ValidFrom, ValidUntil).
func (c Campaign) Window(now time.Time) Reason {
	switch {
	case now.Before(c.ValidFrom):
		return ReasonNotYetValid
	case !now.Before(c.ValidUntil):
		return ReasonExpired
	}
	return ReasonNone
}

// Discount is what the campaign takes off a total in its currency: the fixed
// amount, or the percentage rounded down to the minor unit; never more than
// the total.
func (c Campaign) Discount(total int64) int64 {
	if total <= 0 {
		return 0
	}
	var d int64
	switch c.Kind {
	case DiscountFixed:
		d = c.AmountOff
	case DiscountPercent:
		// total*bps can overflow int64; splitting total at 10000 keeps every
		// product in range and the floor exact.
		bps := int64(c.PercentOffBPS)
		d = total/MaxPercentOffBPS*bps + total%MaxPercentOffBPS*bps/MaxPercentOffBPS
	}
	return min(d, total)
}

// CouponState is where one user's coupon stands; the values follow the wire
// enum CouponState.
type CouponState int

// The coupon states.
const (
	CouponAvailable CouponState = iota + 1
	CouponRedeemed
)

// Coupon is one user's coupon of a campaign. A user holds at most one coupon
// per campaign, and it redeems once.
type Coupon struct {
	ID             string
	UserID         string
	Campaign       Campaign
	State          CouponState
	GrantedBy      string // the admin who granted it
	IdempotencyKey string // the grant's key, scoped to GrantedBy and UserID
	RedeemedJTI    string // the confirmation that redeemed it
	RedeemedOrder  string
	RedeemedAt     time.Time
	CreatedAt      time.Time
}

// Availability says whether the coupon can be used at now, without a
// checkout.
func (cp Coupon) Availability(now time.Time) Reason {
	if cp.State != CouponAvailable {
		return ReasonAlreadyUsed
	}
	return cp.Campaign.Window(now)
}

// Apply says whether the coupon can be used at now for a checkout total and,
// when it can, what it takes off. A redeemed coupon is reported as used
// whatever its window, and the currency is compared before the minimum spend
// because amounts of two currencies do not compare. A total on which the
// coupon would take nothing off (a percentage of a few minor units rounds
// down to zero) is below the minimum spend too: using the coupon there would
// spend it for nothing.
func (cp Coupon) Apply(now time.Time, total money.Money) (money.Money, Reason) {
	if r := cp.Availability(now); r != ReasonNone {
		return money.Money{}, r
	}
	switch {
	case total.Currency != cp.Campaign.Currency:
		return money.Money{}, ReasonCurrencyMismatch
	case total.AmountMinor < cp.Campaign.MinimumSpend:
		return money.Money{}, ReasonBelowMinimumSpend
	}
	d := cp.Campaign.Discount(total.AmountMinor)
	if d == 0 {
		return money.Money{}, ReasonBelowMinimumSpend
	}
	return money.Money{AmountMinor: d, Currency: total.Currency}, ReasonNone
}

// Checkout is what a verified checkout token says about the checkout.
type Checkout = capability.Checkout

// Confirmation is Coupons' record of one confirmation token it issued: the
// authority that Exercise checks the token's claims against.
type Confirmation struct {
	capability.Kept // the jti, the sealed token, when it expires and was saved
	UserID          string
	CheckoutID      string
	CouponID        string
	Code            string
	Discount        int64
	Currency        string
	IdempotencyKey  string
}

// Settlement is what the confirmation pays towards the checkout: the
// discount.
func (c Confirmation) Settlement() money.Money {
	return money.Money{AmountMinor: c.Discount, Currency: c.Currency}
}

// ExerciseState is where one confirmation stands: the states every domain
// shares.
type ExerciseState = capability.ExerciseState

// The exercise states.
const (
	ExerciseApplied     = capability.ExerciseApplied
	ExerciseCompensated = capability.ExerciseCompensated
)

// Exercise is the durable result of exercising (or voiding) a confirmation.
// Its primary key is the token's jti: it is the one-time-use authority.
type Exercise struct {
	JTI           string
	OrderID       string
	State         ExerciseState
	CouponID      string
	RedemptionID  string // the reference of the redemption; empty when voided before use
	Discount      int64
	Currency      string
	Reason        string    // why it was compensated, for the audit log
	AppliedAt     time.Time // zero when voided before use
	CompensatedAt time.Time
}

// Repository keeps campaigns, coupons, confirmations and exercises. Every
// method is atomic; implementations must redeem a coupon at most once under
// any concurrency.
type Repository interface {
	// Grant stores cp.Campaign unless its code exists (ErrCampaignConflict
	// when the stored terms differ) and gives cp.UserID a coupon of it. When
	// the user already holds a coupon of the campaign it returns that one.
	// A second grant with the same GrantedBy, UserID and idempotency key
	// returns the first coupon (ErrIdempotencyConflict when the campaign
	// differs).
	Grant(ctx context.Context, cp Coupon) (Coupon, error)
	// Coupons returns every coupon of a user, in no particular order.
	Coupons(ctx context.Context, userID string) ([]Coupon, error)
	// CouponByCode returns the user's coupon of a campaign, or ErrNotFound.
	CouponByCode(ctx context.Context, userID, code string) (Coupon, error)
	// SaveConfirmation stores a new confirmation. When the user already has a
	// confirmation with c.IdempotencyKey, it returns that one instead
	// (ErrIdempotencyConflict when checkout or code differ), and created is
	// false.
	SaveConfirmation(ctx context.Context, c Confirmation) (stored Confirmation, created bool, err error)
	// ConfirmationByKey returns the user's confirmation with an idempotency
	// key, or ErrNotFound.
	ConfirmationByKey(ctx context.Context, userID, key string) (Confirmation, error)
	// Confirmation returns the confirmation issued with a jti, or ErrNotFound.
	Confirmation(ctx context.Context, jti string) (Confirmation, error)
	// Exercise redeems the confirmation's coupon for an order, exactly once:
	// in one transaction it records the exercise under the jti and marks the
	// coupon redeemed. A retry for the same order returns the stored
	// exercise; another order gets ErrAlreadyExercised; a voided confirmation
	// ErrVoided. A coupon outside its window at now, or already redeemed by
	// another confirmation, is refused with an [UnusableError] and nothing
	// changes.
	Exercise(ctx context.Context, jti, orderID string, now time.Time) (Exercise, error)
	// Compensate makes an applied exercise's coupon available again, or
	// voids a confirmation that was never exercised so that it never will
	// be. Idempotent.
	Compensate(ctx context.Context, jti, orderID, reason string, now time.Time) (Exercise, error)
}
