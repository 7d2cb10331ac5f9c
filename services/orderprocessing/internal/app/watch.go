package app

import (
	"context"
	"sync"
	"time"
)

// Watcher wakes the watchers of an order when it changes. Changes made in
// this process wake them at once; changes made by another replica are seen
// by polling every Poll.
type Watcher struct {
	// Poll is how often a watcher re-reads an order without a local
	// notification. Default 500 ms.
	Poll time.Duration
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives after each Publish of orderID,
// and a function to unsubscribe.
func (w *Watcher) Subscribe(orderID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.subs == nil {
		w.subs = map[string]map[chan struct{}]struct{}{}
	}
	if w.subs[orderID] == nil {
		w.subs[orderID] = map[chan struct{}]struct{}{}
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

// Publish wakes the watchers of orderID.
func (w *Watcher) Publish(orderID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[orderID] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Wait returns after a notification on changed or a poll interval, or with
// ctx's error.
func (w *Watcher) Wait(ctx context.Context, changed <-chan struct{}) error {
	poll := w.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
	case <-t.C:
	}
	return nil
}
