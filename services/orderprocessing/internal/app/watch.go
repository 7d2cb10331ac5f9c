package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// Watcher hands the watchers of an order each new state the saga writes,
// and caps how many watchers there are. Changes made in this process reach
// them at once, with the order itself (no database read); changes made by
// another replica wake them through Changed (PostgreSQL LISTEN/NOTIFY), and
// they read the order; anything else (an operator's command, a lost
// notification) is seen by polling every Poll, so each watcher costs a
// database read per Poll: PerUser and Total bound that cost.
type Watcher struct {
	// Poll is how often a watcher re-reads an order without a local
	// notification. Default 500 ms.
	Poll time.Duration
	// PerUser caps the watchers one user holds at once, Total those of
	// every user; 0 or negative: no cap (orderprocessing.Config sets the
	// service's defaults).
	PerUser, Total int

	mu     sync.Mutex
	subs   map[string]map[chan domain.Order]struct{}
	byUser map[string]int // open watchers by user
	open   int            // open watchers in all
}

// Admit takes one of user's watcher slots, and returns the function that
// gives it back (call it once, when the watcher ends), or
// domain.ErrTooManyWatchers when user or the process holds as many as
// allowed.
func (w *Watcher) Admit(user string) (release func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.PerUser > 0 && w.byUser[user] >= w.PerUser:
		return nil, fmt.Errorf("%w: at most %d per user; end another watch first", domain.ErrTooManyWatchers, w.PerUser)
	case w.Total > 0 && w.open >= w.Total:
		return nil, fmt.Errorf("%w: the service is at its limit of %d; retry later", domain.ErrTooManyWatchers, w.Total)
	}
	if w.byUser == nil {
		w.byUser = map[string]int{}
	}
	w.byUser[user]++
	w.open++
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.byUser[user]--; w.byUser[user] <= 0 {
				delete(w.byUser, user)
			}
			w.open--
		})
	}, nil
}

// Open returns how many watchers are open, in all and of user.
func (w *Watcher) Open(user string) (total, ofUser int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.open, w.byUser[user]
}

// Subscribe returns a channel that receives the order published by each
// Publish of orderID (the latest one, when the subscriber has not taken the
// previous yet), and a function to unsubscribe.
func (w *Watcher) Subscribe(orderID string) (<-chan domain.Order, func()) {
	ch := make(chan domain.Order, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.subs == nil {
		w.subs = map[string]map[chan domain.Order]struct{}{}
	}
	if w.subs[orderID] == nil {
		w.subs[orderID] = map[chan domain.Order]struct{}{}
	}
	w.subs[orderID][ch] = struct{}{}
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.subs[orderID], ch)
		if len(w.subs[orderID]) == 0 {
			delete(w.subs, orderID)
		}
	}
}

// Publish hands o to the watchers of o.ID. A watcher that has not taken
// the previous state yet gets o in its place: watchers want the latest.
func (w *Watcher) Publish(o domain.Order) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[o.ID] {
		put(ch, o)
	}
}

// Changed tells the watchers of orderID that it changed elsewhere: they
// read it again.
func (w *Watcher) Changed(orderID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[orderID] {
		put(ch, domain.Order{})
	}
}

// ChangedAll tells every watcher to read its order again: changes may have
// been missed (a notification listener that was not in place).
func (w *Watcher) ChangedAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, subs := range w.subs {
		for ch := range subs {
			put(ch, domain.Order{})
		}
	}
}

// put replaces what ch holds with o. The caller holds w.mu, so the buffer
// is free after the drain.
func put(ch chan domain.Order, o domain.Order) {
	select {
	case <-ch: // superseded
	default:
	}
	ch <- o
}

// Wait returns the order published on changed (ok), or ok=false when the
// order must be read: Changed or ChangedAll said so, or a poll interval
// passed without news; or ctx's error.
func (w *Watcher) Wait(ctx context.Context, changed <-chan domain.Order) (o domain.Order, ok bool, err error) {
	poll := w.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return o, false, ctx.Err()
	case o = <-changed:
		return o, o.ID != "", nil
	case <-t.C:
		return o, false, nil
	}
}
