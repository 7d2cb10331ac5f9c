package app_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// orders is a Repository that knows one order per user, in progress; every
// other method is left unimplemented (nil) and panics if called.
type orders struct{ domain.Repository }

func (orders) Order(_ context.Context, id string) (domain.Order, error) {
	return domain.Order{ID: id, UserID: id, Status: domain.OrderInProgress, Version: 1}, nil
}

// watch is one Watch call held open in its send: started is closed once the
// first state was sent (the watcher holds its slot), end makes send fail,
// which ends the call, and done receives what Watch returned.
type watch struct {
	started, end chan struct{}
	done         chan error
}

var errEnded = errors.New("the client went away")

func startWatch(s *app.Service, user string) *watch {
	w := &watch{started: make(chan struct{}), end: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		first := true
		w.done <- s.Watch(context.Background(), app.Caller{UserID: user}, user, func(domain.Order) error {
			if first {
				first = false
				close(w.started)
			}
			<-w.end
			return errEnded
		})
	}()
	return w
}

// TestWatchCaps (issue 15, item 6): a user's watcher beyond PerUser is
// refused with ErrTooManyWatchers while another user still gets one; a
// watcher beyond Total is refused whoever asks; a watcher that ends frees
// its slot. Watchers are held open in their send: no sleeps, no timing.
func TestWatchCaps(t *testing.T) {
	t.Parallel()
	w := &app.Watcher{PerUser: 2, Total: 3}
	s := app.New(app.Config{Repo: orders{}, Watch: w})
	refused := func(user string) {
		t.Helper()
		err := s.Watch(t.Context(), app.Caller{UserID: user}, user, func(domain.Order) error {
			t.Errorf("a refused watcher of %s was sent the order", user)
			return nil
		})
		if !errors.Is(err, domain.ErrTooManyWatchers) {
			t.Fatalf("watcher of %s = %v, want ErrTooManyWatchers", user, err)
		}
	}
	open := func(user string, wantTotal, wantUser int) {
		t.Helper()
		if total, ofUser := w.Open(user); total != wantTotal || ofUser != wantUser {
			t.Fatalf("open watchers: %d in all, %d of %s; want %d and %d", total, ofUser, user, wantTotal, wantUser)
		}
	}

	a1, a2 := startWatch(s, "usr_alice"), startWatch(s, "usr_alice")
	<-a1.started
	<-a2.started
	open("usr_alice", 2, 2)
	refused("usr_alice") // the cap+1-th of one user
	open("usr_alice", 2, 2)

	b1 := startWatch(s, "usr_bob") // another user still gets one
	<-b1.started
	open("usr_bob", 3, 1)
	refused("usr_bob")   // beyond Total, though under bob's own cap
	refused("usr_carol") // and for anyone

	close(a1.end) // alice's first watcher ends: its slot is free
	if err := <-a1.done; !errors.Is(err, errEnded) {
		t.Fatalf("ended watcher returned %v", err)
	}
	open("usr_alice", 2, 1)
	a3 := startWatch(s, "usr_alice")
	<-a3.started
	open("usr_alice", 3, 2)

	for _, x := range []*watch{a2, b1, a3} {
		close(x.end)
		<-x.done
	}
	open("usr_alice", 0, 0)
	c1 := startWatch(s, "usr_carol") // everything freed
	<-c1.started
	close(c1.end)
	<-c1.done
}

// TestWatchNoCap: zero caps admit any number of watchers.
func TestWatchNoCap(t *testing.T) {
	t.Parallel()
	w := &app.Watcher{}
	var releases []func()
	for range 100 {
		release, err := w.Admit("usr_alice")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	for _, r := range releases {
		r()
		r() // a second call gives nothing back twice
	}
	if total, _ := w.Open("usr_alice"); total != 0 {
		t.Fatalf("%d open after every release", total)
	}
}

// countingOrders is orders counting its reads.
type countingOrders struct {
	orders
	reads atomic.Int64
}

func (c *countingOrders) Order(ctx context.Context, id string) (domain.Order, error) {
	c.reads.Add(1)
	return c.orders.Order(ctx, id)
}

// TestWatchPushed (issue 17): the states the saga publishes reach a watcher
// as they are, with no read of the store; an older state published late is
// not sent; the final one ends the watch. The poll is an hour, so only the
// pushes can move it.
func TestWatchPushed(t *testing.T) {
	t.Parallel()
	repo := &countingOrders{}
	w := &app.Watcher{Poll: time.Hour}
	s := app.New(app.Config{Repo: repo, Watch: w})
	const user = "usr_alice"
	sent := make(chan domain.Order)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(t.Context(), app.Caller{UserID: user}, user, func(o domain.Order) error {
			sent <- o
			return nil
		})
	}()
	if first := <-sent; first.Version != 1 {
		t.Fatalf("first state sent: version %d", first.Version)
	}
	state := func(v int64, st domain.OrderStatus) domain.Order {
		return domain.Order{ID: user, UserID: user, Status: st, Version: v}
	}
	w.Publish(state(2, domain.OrderInProgress))
	if got := <-sent; got.Version != 2 {
		t.Fatalf("pushed version 2, sent %d", got.Version)
	}
	w.Publish(state(2, domain.OrderInProgress)) // a state already sent
	w.Publish(state(3, domain.OrderCompleted))
	if got := <-sent; got.Version != 3 || got.Status != domain.OrderCompleted {
		t.Fatalf("pushed version 3, sent %d %v", got.Version, got.Status)
	}
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v after the final state", err)
	}
	if n := repo.reads.Load(); n != 1 {
		t.Fatalf("Watch read the store %d times; want once, for the first state", n)
	}
}
