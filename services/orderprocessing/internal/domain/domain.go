// Package domain holds OrderProcessing's rules: the catalog and the pricing
// of a checkout, the order and its saga steps, and their state machines. It
// knows the generic capability protocol only: a step is "a token that grants
// a capability, to be exercised at its issuer", never a coupon or a card.
//
// It is pure: no I/O, no Connect codes. Errors are sentinels the ports map.
package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Sentinel errors; wrap with %w to add detail. The ports map each to a
// Connect code in one place.
var (
	// ErrInvalidArgument reports a malformed request (InvalidArgument).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound reports an unknown checkout or order, or one the caller
	// may not see: the two are indistinguishable on purpose
	// (PermissionDenied).
	ErrNotFound = errors.New("not found or not yours")
	// ErrCheckoutClosed reports a checkout that is placed, cancelled or
	// expired (FailedPrecondition).
	ErrCheckoutClosed = errors.New("checkout is not open")
	// ErrSettlement reports confirmations that do not pay for the order
	// exactly (FailedPrecondition).
	ErrSettlement = errors.New("confirmations do not settle the order total")
	// ErrEnvelope reports a confirmation token whose envelope is fine but
	// does not fit this order: other checkout, other user, unknown or
	// repeated capability (FailedPrecondition).
	ErrEnvelope = errors.New("confirmation token does not fit this order")
	// ErrIdempotencyConflict reports an idempotency key reused with another
	// request (InvalidArgument).
	ErrIdempotencyConflict = errors.New("idempotency key was used with a different request")
	// ErrLeaseLost reports a saga write by a replica whose lease on the
	// order was taken over (it paused past its lease): the write is refused
	// and that replica stops working on the order.
	ErrLeaseLost = errors.New("the lease on the order was lost")
	// ErrNotStuck reports an operator action (retry, resolve) on an order
	// that does not need an operator: it is not NEEDS_OPERATOR.
	ErrNotStuck = errors.New("the order does not need an operator")
	// ErrTooManyWatchers reports a WatchOrder beyond the cap of streams a
	// user, or the service, may hold open at once (ResourceExhausted).
	ErrTooManyWatchers = errors.New("too many orders watched at once")
)

// Product is one item of the catalog.
type Product struct {
	SKU         string
	Name        string
	Description string
	UnitPrice   money.Money
}

// Limits of a cart.
const (
	MaxLines    = 50
	MaxQuantity = 99
	MaxTokens   = 8
)

// CartItem is one line of a cart as the client asks for it.
type CartItem struct {
	SKU      string
	Quantity int32
}

// Line is a priced line.
type Line struct {
	SKU       string      `json:"sku"`
	Name      string      `json:"name"`
	Quantity  int32       `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
	LineTotal money.Money `json:"line_total"`
}

// Price prices a cart against the catalog: every SKU known and at most once,
// quantities 1 to MaxQuantity, one currency. Prices never come from the
// client.
func Price(items []CartItem, catalog map[string]Product) ([]Line, money.Money, error) {
	if len(items) == 0 || len(items) > MaxLines {
		return nil, money.Money{}, fmt.Errorf("%w: a cart has 1 to %d lines", ErrInvalidArgument, MaxLines)
	}
	lines := make([]Line, 0, len(items))
	totals := make([]money.Money, 0, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		p, ok := catalog[it.SKU]
		switch {
		case !ok:
			return nil, money.Money{}, fmt.Errorf("%w: unknown SKU %q", ErrInvalidArgument, truncate(it.SKU, 64))
		case seen[it.SKU]:
			return nil, money.Money{}, fmt.Errorf("%w: SKU %q appears twice", ErrInvalidArgument, it.SKU)
		case it.Quantity < 1 || it.Quantity > MaxQuantity:
			return nil, money.Money{}, fmt.Errorf("%w: quantity of %q must be 1 to %d", ErrInvalidArgument, it.SKU, MaxQuantity)
		}
		seen[it.SKU] = true
		lt := money.Money{AmountMinor: p.UnitPrice.AmountMinor * int64(it.Quantity), Currency: p.UnitPrice.Currency}
		lines = append(lines, Line{SKU: p.SKU, Name: p.Name, Quantity: it.Quantity, UnitPrice: p.UnitPrice, LineTotal: lt})
		totals = append(totals, lt)
	}
	total, err := money.Sum(totals...)
	if err != nil {
		return nil, money.Money{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	return lines, total, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CheckoutStatus is the life cycle of a checkout.
type CheckoutStatus int

// The checkout statuses; values follow the wire enum.
const (
	CheckoutOpen CheckoutStatus = iota + 1
	CheckoutPlaced
	CheckoutCancelled
	CheckoutExpired
)

// Checkout is a priced cart that an order can be placed for once.
type Checkout struct {
	ID             string
	UserID         string
	Lines          []Line
	Total          money.Money
	Status         CheckoutStatus
	OrderID        string
	IdempotencyKey string
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// StatusAt is the checkout's status at now: an open checkout past its
// expiry is expired.
func (c Checkout) StatusAt(now time.Time) CheckoutStatus {
	if c.Status == CheckoutOpen && !now.Before(c.ExpiresAt) {
		return CheckoutExpired
	}
	return c.Status
}

// OrderStatus is the life cycle of an order; values follow the wire enum.
type OrderStatus int

// The order statuses. Completed, Failed and NeedsOperator are final: the
// saga does not resume them and WatchOrder ends there.
const (
	OrderPending OrderStatus = iota + 1
	OrderInProgress
	OrderCompensating
	OrderCompleted
	OrderFailed
	// OrderNeedsOperator: an issuer refused for good to compensate a step
	// (StepCompensationRefused); the other steps were compensated. Only an
	// operator moves it on: Order.RetryRefused or Order.Resolve.
	OrderNeedsOperator
)

// FinalStatuses lists the final statuses, which the saga never resumes.
var FinalStatuses = []OrderStatus{OrderCompleted, OrderFailed, OrderNeedsOperator}

// Final reports whether s is a final status.
func (s OrderStatus) Final() bool { return slices.Contains(FinalStatuses, s) }

// String returns the wire enum's name without its prefix: "COMPLETED".
func (s OrderStatus) String() string {
	names := []string{"UNSPECIFIED", "PENDING", "IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED", "NEEDS_OPERATOR"}
	if s < 0 || int(s) >= len(names) {
		return fmt.Sprintf("OrderStatus(%d)", int(s))
	}
	return names[s]
}

// StepState is the life cycle of one step; values follow the wire enum.
type StepState int

// The step states.
const (
	StepPending StepState = iota + 1
	StepExercising
	StepApplied
	StepFailed
	StepCompensating
	StepCompensated
	// StepCompensationRefused: the issuer refused Compensate for good (an
	// answer that is not transient); LastError holds it. The saga stops
	// there and the order ends OrderNeedsOperator.
	StepCompensationRefused
	// StepResolved: an operator settled the step by hand after its
	// compensation was refused (Order.Resolve). The issuer never confirmed
	// a compensation; what it holds was dealt with outside the saga.
	StepResolved
)

// String returns the wire enum's name without its prefix: "COMPENSATED".
func (s StepState) String() string {
	names := []string{"UNSPECIFIED", "PENDING", "EXERCISING", "APPLIED", "FAILED", "COMPENSATING", "COMPENSATED",
		"COMPENSATION_REFUSED", "RESOLVED"}
	if s < 0 || int(s) >= len(names) {
		return fmt.Sprintf("StepState(%d)", int(s))
	}
	return names[s]
}

// Step is the relay of one confirmation token to its issuer.
type Step struct {
	Capability  string
	Issuer      string
	Stage       int
	State       StepState
	Settlement  money.Money
	JTI         string
	ExpiresAt   time.Time // the token's exp
	SealedToken string    // the token, encrypted at rest
	Reference   string
	Attempts    int
	LastError   string
}

// Lease is a replica's hold on an order's saga: its owner and the epoch of
// the claim, the fencing token every saga write carries. A replica that
// paused past its lease holds an old epoch, so its writes are refused once
// another replica has claimed the order.
type Lease struct {
	Owner string
	Epoch int64
}

// Order is a placed checkout and the progress of its saga.
type Order struct {
	ID            string
	CheckoutID    string
	UserID        string
	Lines         []Line
	Total         money.Money
	Status        OrderStatus
	Steps         []Step // by stage, then capability
	FailureReason string
	// OperatorNote is what the operator wrote when resolving the order by
	// hand (Resolve); empty otherwise. Never shown to the user.
	OperatorNote   string
	IdempotencyKey string
	Version        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Txn is the transaction id of the request that placed the order: the
	// saga continues that transaction on every Exercise and Compensate
	// (its subject is UserID). Empty for orders placed before it was
	// recorded. An id, not a token: nothing to seal.
	Txn string
	// TraceParent is the W3C traceparent of the request that placed the
	// order, so that the saga's spans link to it; empty when there was no
	// valid trace context.
	TraceParent string
}

// RefusedToken is a refusal of confirmation tokens by PlaceOrder, as the
// audit trail records it: the tokens it concerns by (issuer, jti) when
// their claims could be trusted (a replay, a token of another checkout,
// settlements that do not add up to the total: all of them), none when
// they could not (a bad signature), and the check that failed (token.Reason's
// label: "replayed", "expired", "signature", ...; or Plan's: "checkout",
// "subject", "capabilities", "route", "duplicate", "settlement"). Never the
// token. It wraps the refusal.
type RefusedToken struct {
	Tokens []TokenID
	Check  string
	Err    error
}

// IssuedToken is what the audit trail records of a checkout token
// OrderProcessing signed: its issuer, jti and expiry. Never the token.
type IssuedToken struct {
	Issuer, JTI string
	ExpiresAt   time.Time
}

// TokenID names a token: its issuer and jti.
type TokenID struct{ Issuer, JTI string }

func (r *RefusedToken) Error() string { return r.Err.Error() }
func (r *RefusedToken) Unwrap() error { return r.Err }

// Confirmation is what PlaceOrder learns from one verified confirmation
// token's envelope.
type Confirmation struct {
	Raw          string
	Issuer       string
	JTI          string
	Subject      string
	CheckoutID   string
	Capabilities []string
	Settlement   money.Money
	ExpiresAt    time.Time
}

// Route says where a capability is exercised and in which stage: the routing
// table, from configuration.
type Route struct {
	Capability string
	Issuer     string
	Stage      int
}

// Routes is the routing table by capability.
type Routes map[string]Route

// Plan checks a checkout's confirmations and turns them into steps: each
// token bound to this checkout and user, granting exactly one capability
// that the routing table knows for its issuer, one token per capability, and
// settlements adding up exactly to the total in its currency.
func Plan(co Checkout, user string, confs []Confirmation, routes Routes) ([]Step, error) {
	if len(confs) == 0 || len(confs) > MaxTokens {
		return nil, fmt.Errorf("%w: 1 to %d confirmation tokens", ErrInvalidArgument, MaxTokens)
	}
	steps := make([]Step, 0, len(confs))
	amounts := make([]money.Money, 0, len(confs))
	for i, c := range confs {
		refuse := func(check string, err error) error {
			return &RefusedToken{Tokens: []TokenID{{c.Issuer, c.JTI}}, Check: check, Err: err}
		}
		switch {
		case c.CheckoutID != co.ID:
			return nil, refuse("checkout", fmt.Errorf("%w: token %d is for another checkout", ErrEnvelope, i+1))
		case c.Subject != user:
			return nil, refuse("subject", fmt.Errorf("%w: token %d is for another user", ErrEnvelope, i+1))
		case len(c.Capabilities) != 1:
			return nil, refuse("capabilities", fmt.Errorf("%w: token %d grants %d capabilities, want 1", ErrEnvelope, i+1, len(c.Capabilities)))
		}
		r, ok := routes[c.Capabilities[0]]
		if !ok || r.Issuer != c.Issuer {
			return nil, refuse("route", fmt.Errorf("%w: token %d grants %q, which has no route from its issuer", ErrEnvelope, i+1, c.Capabilities[0]))
		}
		if slices.ContainsFunc(steps, func(s Step) bool { return s.Capability == r.Capability }) {
			return nil, refuse("duplicate", fmt.Errorf("%w: two tokens grant %q", ErrEnvelope, r.Capability))
		}
		if c.Settlement.Currency != co.Total.Currency {
			return nil, refuse("settlement", fmt.Errorf("%w: token %d settles in %s, the order is in %s", ErrSettlement, i+1, c.Settlement.Currency, co.Total.Currency))
		}
		amounts = append(amounts, c.Settlement)
		steps = append(steps, Step{
			Capability: r.Capability, Issuer: r.Issuer, Stage: r.Stage, State: StepPending,
			Settlement: c.Settlement, JTI: c.JTI, ExpiresAt: c.ExpiresAt,
		})
	}
	all := make([]TokenID, len(confs))
	for i, c := range confs {
		all[i] = TokenID{c.Issuer, c.JTI}
	}
	sum, err := money.Sum(amounts...)
	if err != nil {
		return nil, &RefusedToken{Tokens: all, Check: "settlement", Err: fmt.Errorf("%w: %v", ErrSettlement, err)}
	}
	if sum != co.Total {
		return nil, &RefusedToken{Tokens: all, Check: "settlement",
			Err: fmt.Errorf("%w: confirmations settle %s, the order total is %s", ErrSettlement, sum, co.Total)}
	}
	SortSteps(steps)
	return steps, nil
}

// SortSteps orders steps by stage, then capability: the saga's order.
func SortSteps(steps []Step) {
	slices.SortFunc(steps, func(a, b Step) int {
		if a.Stage != b.Stage {
			return a.Stage - b.Stage
		}
		return strings.Compare(a.Capability, b.Capability)
	})
}

// Repository keeps the catalog, checkouts and orders. Every method is
// atomic.
type Repository interface {
	// Products returns the catalog by SKU.
	Products(ctx context.Context) (map[string]Product, error)
	// CreateCheckout stores c and records in the audit trail that tok, the
	// checkout token signed for it, was issued, in one transaction (no
	// event for a zero tok); with a user's idempotency key already used it
	// returns the stored checkout and created=false, and records nothing.
	CreateCheckout(ctx context.Context, c Checkout, tok IssuedToken) (stored Checkout, created bool, err error)
	// CheckoutTokenIssued records in the audit trail that tok was issued
	// for c, a checkout stored before (a retry's token).
	CheckoutTokenIssued(ctx context.Context, c Checkout, tok IssuedToken) error
	// Checkout returns a checkout by id, or ErrNotFound.
	Checkout(ctx context.Context, id string) (Checkout, error)
	// CancelCheckout cancels an open checkout (idempotently) and returns it;
	// a placed one is ErrCheckoutClosed.
	CancelCheckout(ctx context.Context, id string, now time.Time) (Checkout, error)
	// PlaceOrder stores o, its steps and their sealed tokens, records every
	// step's (issuer, jti) as consumed and marks the checkout placed, in one
	// transaction. A user's order with o.IdempotencyKey already stored is
	// returned with created=false and nothing written; a checkout no longer
	// open is ErrCheckoutClosed; a jti consumed before is
	// replay.ErrReplayed.
	PlaceOrder(ctx context.Context, o Order, now time.Time) (stored Order, created bool, err error)
	// Order returns an order by id, or ErrNotFound.
	Order(ctx context.Context, id string) (Order, error)
	// Orders lists a user's orders newest first, after the cursor (an order
	// id; "" for the first page), at most limit.
	Orders(ctx context.Context, userID, after string, limit int) ([]Order, error)
	// Transition saves next, the state the holder of lease moved order
	// prev to: next's status, failure reason, operator note and UpdatedAt,
	// and the steps that differ from prev's, with the version
	// prev.Version+1, atomically, if the stored order is still at
	// prev.Version under lease; otherwise it writes nothing and returns
	// ErrLeaseLost (fencing: checked in the statement that writes). With
	// release the lease is given up in the same statement. It returns next
	// with its new version.
	Transition(ctx context.Context, lease Lease, prev, next Order, release bool) (Order, error)
	// Claim leases an unfinished order to owner until until, if no other
	// owner holds an unexpired lease on it; ok reports success. A claim
	// that takes the order from another owner (or from none) starts a new
	// lease epoch; an owner renewing its own lease keeps it.
	Claim(ctx context.Context, id, owner string, now, until time.Time) (lease Lease, ok bool, err error)
	// Release gives a lease up, if it is still the order's lease.
	Release(ctx context.Context, id string, lease Lease) error
	// Unfinished lists the ids of orders not final whose lease is free or
	// expired at now.
	Unfinished(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// OperatorRepository is the store as an operator's commands use it, outside
// any saga. Every method is atomic.
type OperatorRepository interface {
	// NeedingOperator lists the orders that are OrderNeedsOperator, steps
	// included, oldest first, at most limit.
	NeedingOperator(ctx context.Context, limit int) ([]Order, error)
	// OperatorUpdate applies fn to the stored order and saves the result
	// with its version incremented and UpdatedAt set to now, atomically,
	// whoever holds its lease: the lease is freed and a new lease epoch
	// starts, so that a replica holding an old lease writes nothing more
	// and any replica may claim the order next. An unknown order is
	// ErrNotFound; an error of fn writes nothing and is returned.
	OperatorUpdate(ctx context.Context, id string, now time.Time, fn func(*Order) error) (Order, error)
}
