package embedded

import (
	"errors"
	"testing"
)

// TestFailureStopsAndIsReturned: the first failure of a goroutine of the
// system is sent on Err, stops the others, and is what Close returns, every
// time.
func TestFailureStopsAndIsReturned(t *testing.T) {
	t.Parallel()
	s := &System{errc: make(chan error, 1)}
	ctx := s.startGroup(t.Context())
	boom := errors.New("listener failed")
	stopped := make(chan struct{})
	s.goReport(func() error {
		<-ctx.Done() // a task: stops when another goroutine fails
		close(stopped)
		return nil
	})
	s.goReport(func() error { return boom })
	if err := <-s.Err(); !errors.Is(err, boom) {
		t.Fatalf("Err received %v, want the failure", err)
	}
	<-stopped
	for range 2 {
		if err := s.Close(); !errors.Is(err, boom) {
			t.Fatalf("Close = %v, want the failure", err)
		}
	}
}

// TestCloseAfterCleanStop: Close returns nil when nothing failed, and runs
// the closers once, in reverse order.
func TestCloseAfterCleanStop(t *testing.T) {
	t.Parallel()
	var order []int
	s := &System{errc: make(chan error, 1)}
	s.closers = []func(){func() { order = append(order, 1) }, func() { order = append(order, 2) }}
	ctx := s.startGroup(t.Context())
	s.goReport(func() error { <-ctx.Done(); return nil })
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
	}
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Fatalf("closers ran %v, want [2 1]", order)
	}
}
