package audit

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/budget"
)

// Trail is one service's writer of its events: it stamps each event with
// the service's name, the time and the request's txn before appending it.
// Log and Service are required.
type Trail struct {
	Log     *Log
	Service string
	// Now stamps Event.At; it defaults to time.Now.
	Now func() time.Time
	// Txn returns the transaction id of the request in ctx (authn.TxnFrom);
	// when nil, or when it returns "", the event keeps its own Txn.
	Txn func(ctx context.Context) string
	// Refusals caps the refusals recorded per presenting subject (see
	// [Trail.Refused]); nil records every one.
	Refusals *RefusalBudget
}

func (t Trail) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t Trail) stamp(ctx context.Context, e Event) Event {
	e.Service = t.Service
	e.At = t.now()
	if t.Txn != nil {
		if txn := t.Txn(ctx); txn != "" {
			e.Txn = txn
		}
	}
	return e
}

// Append stamps e and appends it inside q, the transaction of the effect it
// records (see [Log.Append]).
func (t Trail) Append(ctx context.Context, q Tx, e Event) error {
	_, err := t.Log.Append(ctx, q, t.stamp(ctx, e))
	return err
}

// AppendAll stamps events and appends them inside q, the transaction of
// the effect they record, with one move of the chain's head (see
// [Log.AppendAll]).
func (t Trail) AppendAll(ctx context.Context, q Tx, events ...Event) error {
	stamped := make([]Event, len(events))
	for i, e := range events {
		stamped[i] = t.stamp(ctx, e)
	}
	_, err := t.Log.AppendAll(ctx, q, stamped...)
	return err
}

// Record stamps e and appends it in a transaction of its own (see
// [Log.Record]): for a refusal, which has no effect to share one with.
func (t Trail) Record(ctx context.Context, e Event) error {
	_, err := t.Log.Record(ctx, t.stamp(ctx, e))
	return err
}

// Refused records e, a refusal (its Action is set to [Refused]), in a
// transaction of its own, within the budget of e.Subject, the presenting
// subject: a caller presenting bad tokens in a loop would otherwise turn
// each into a write. Beyond the budget nothing is written, and that is no
// error: the budget counts it (RefusalBudget.Unrecorded) and logs the
// moment it was spent.
func (t Trail) Refused(ctx context.Context, e Event) error {
	e.Action = Refused
	if t.Refusals != nil && !t.Refusals.allow(ctx, t.Service, e.Subject, t.now()) {
		return nil
	}
	return t.Record(ctx, e)
}

// RefusalBudget is each presenting subject's budget of recorded refusals,
// shared by the trails of a process that record them (a budget.Budget by
// subject). The moment a subject spends it is logged, once; the refusals
// beyond are counted, not recorded nor logged one by one. It is safe for
// concurrent use.
type RefusalBudget struct {
	budget     *budget.Budget[string]
	log        *slog.Logger
	unrecorded atomic.Int64
}

// The default budget of recorded refusals: 30 a subject, one more every 2
// seconds, for 10,000 subjects (about 2 MiB). A client refused that often
// is an attack or a bug, and the first 30 refusals say which.
const (
	DefaultRefusalBurst   = 30
	DefaultRefusalRefill  = 2 * time.Second
	DefaultRefusalClients = 10_000
)

// NewRefusalBudget returns a budget of burst recorded refusals per
// subject, one more every refill, remembering at most clients subjects;
// log gets the line of a subject spending it.
func NewRefusalBudget(burst int, refill time.Duration, clients int, log *slog.Logger) *RefusalBudget {
	return &RefusalBudget{budget: budget.New[string](burst, refill, clients), log: log}
}

func (r *RefusalBudget) allow(ctx context.Context, service, subject string, now time.Time) bool {
	allowed, spent := r.budget.Fail(subject, now)
	if spent {
		r.log.WarnContext(ctx, "audit: the subject spent its budget of recorded refusals; further refusals are counted, not recorded",
			"service", service, "subject", subject)
	}
	if !allowed {
		r.unrecorded.Add(1)
	}
	return allowed
}

// Unrecorded returns how many refusals were not recorded for a spent
// budget.
func (r *RefusalBudget) Unrecorded() int64 { return r.unrecorded.Load() }

// RetentionFactor is how many times the retention of a service's records
// (-retention) its audit events are kept, counted from each event: a
// token's records go once the retention has passed since its last change,
// so its events, from issued to purged, outlive them by about a retention
// more, long enough to answer what happened to a token after its records
// are gone.
const RetentionFactor = 2
