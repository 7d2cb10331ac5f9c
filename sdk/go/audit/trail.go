package audit

import (
	"context"
	"time"
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
}

func (t Trail) stamp(ctx context.Context, e Event) Event {
	e.Service = t.Service
	if t.Now != nil {
		e.At = t.Now()
	} else {
		e.At = time.Now()
	}
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

// RetentionFactor is how many times the retention of a service's records
// (-retention) its audit events are kept, counted from each event: a
// token's records go once the retention has passed since its last change,
// so its events, from issued to purged, outlive them by about a retention
// more, long enough to answer what happened to a token after its records
// are gone.
const RetentionFactor = 2
