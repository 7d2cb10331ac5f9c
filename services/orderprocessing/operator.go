package orderprocessing

import (
	"context"
	"errors"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// The operator's functions on orders that need one, for `tokenrelay orders`
// (stuck, retry, resolve). An order needs an operator (status
// NEEDS_OPERATOR) when an issuer refused for good to compensate one of its
// steps (COMPENSATION_REFUSED); the saga compensated the others and stopped.
// Each function works on OrderProcessing's database directly, safely while
// the service runs (one short transaction each), and never migrates it: on
// a database the service has not migrated to this version, it fails.

// Errors of RetryOrder and ResolveOrder; test with errors.Is.
var (
	// ErrOrderNotFound reports an unknown order id.
	ErrOrderNotFound = domain.ErrNotFound
	// ErrNotStuck reports an order that does not need an operator.
	ErrNotStuck = domain.ErrNotStuck
	// ErrInvalidNote reports a resolution note that is empty, longer than
	// MaxOperatorNote characters or not UTF-8.
	ErrInvalidNote = domain.ErrInvalidArgument
)

// MaxOperatorNote bounds ResolveOrder's note, in characters.
const MaxOperatorNote = domain.MaxOperatorNote

// StuckOrder is an order as the operator sees it.
type StuckOrder struct {
	ID     string
	UserID string
	// Status is the wire enum's name without its prefix: NEEDS_OPERATOR,
	// or after RetryOrder COMPENSATING, after ResolveOrder FAILED.
	Status        string
	FailureReason string
	// OperatorNote is ResolveOrder's note; empty before.
	OperatorNote string
	// CreatedAt is when the order was placed; UpdatedAt when it last
	// changed (for a stuck order, when it became NEEDS_OPERATOR).
	CreatedAt, UpdatedAt time.Time
	// Steps are the steps the function is about: the refused ones (Stuck),
	// those put back (RetryOrder) or resolved (ResolveOrder).
	Steps []StuckStep
}

// StuckStep is one step of a StuckOrder.
type StuckStep struct {
	Capability, Issuer string
	// State is the wire enum's name without its prefix:
	// COMPENSATION_REFUSED, COMPENSATING or RESOLVED.
	State    string
	Attempts int
	// LastError is the issuer's answer: its Connect code and message.
	LastError string
}

func stuckOrder(o domain.Order, steps []domain.Step) StuckOrder {
	out := StuckOrder{ID: o.ID, UserID: o.UserID, Status: o.Status.String(), FailureReason: o.FailureReason,
		OperatorNote: o.OperatorNote, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt, Steps: []StuckStep{}}
	for _, st := range steps {
		out.Steps = append(out.Steps, StuckStep{Capability: st.Capability, Issuer: st.Issuer, State: st.State.String(),
			Attempts: st.Attempts, LastError: st.LastError})
	}
	return out
}

func operator(db *sqldb.DB) app.Operator { return app.Operator{Repo: adapters.NewOperator(db)} }

// StuckOrders lists the orders that need an operator, oldest first, at most
// limit (1 or more), each with its refused steps.
func StuckOrders(ctx context.Context, db *sqldb.DB, limit int) ([]StuckOrder, error) {
	if limit < 1 {
		return nil, errors.New("orderprocessing: limit must be at least 1")
	}
	orders, err := operator(db).Stuck(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]StuckOrder, 0, len(orders))
	for _, o := range orders {
		out = append(out, stuckOrder(o, o.Refused()))
	}
	return out, nil
}

// RetryOrder puts an order that needs an operator back to COMPENSATING, its
// refused steps with it (keeping their attempts and last error), with a free
// lease: the saga of whichever replica scans for unfinished orders next
// (every 2 s by default) compensates those steps again, and ends the order
// FAILED, or NEEDS_OPERATOR again if an issuer still refuses. Use it once
// the cause of the refusal is fixed (a route, the issuer's data). It
// returns the order as stored, with the steps put back.
func RetryOrder(ctx context.Context, db *sqldb.DB, orderID string) (StuckOrder, error) {
	o, steps, err := operator(db).Retry(ctx, orderID)
	if err != nil {
		return StuckOrder{}, err
	}
	return stuckOrder(o, steps), nil
}

// ResolveOrder records that an operator settled an order's refused
// compensations by hand (with each issuer, outside the saga): the refused
// steps become RESOLVED (never COMPENSATED: no issuer confirmed a
// compensation), the order FAILED, and note, saying what was done, is kept
// with the order (never shown to its user). It returns the order as stored,
// with the steps resolved.
func ResolveOrder(ctx context.Context, db *sqldb.DB, orderID, note string) (StuckOrder, error) {
	o, steps, err := operator(db).Resolve(ctx, orderID, note)
	if err != nil {
		return StuckOrder{}, err
	}
	return stuckOrder(o, steps), nil
}
