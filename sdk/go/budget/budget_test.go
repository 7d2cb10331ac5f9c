package budget_test

import (
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/budget"
)

// TestBound: the budget remembers at most its capacity of clients,
// forgetting the least recently active; the one flooding now stays
// refused.
func TestBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := budget.New[int](2, time.Minute, 64)
	const attacker = -1
	for i := range 10_000 {
		b.Fail(attacker, now)
		b.Fail(i, now)
		if n := b.Size(); n > 64 {
			t.Fatalf("after %d clients the budget remembers %d, more than 64", i+1, n)
		}
	}
	if _, spent := b.Spent(attacker, now); !spent {
		t.Fatal("the active attacker was forgotten")
	}
	if _, spent := b.Spent(0, now); spent {
		t.Fatal("the first client was not forgotten")
	}
}

// TestFail: a client's failures are allowed up to its burst, the one that
// spends the budget says so once, and the budget refills one failure per
// refill; other clients are untouched.
func TestFail(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := budget.New[string](3, time.Minute, 16)
	for i, want := range []struct{ allowed, spent bool }{{true, false}, {true, false}, {true, true}, {false, false}, {false, false}} {
		allowed, spent := b.Fail("alice", now)
		if allowed != want.allowed || spent != want.spent {
			t.Fatalf("failure %d: allowed %v, spent %v; want %v, %v", i+1, allowed, spent, want.allowed, want.spent)
		}
	}
	if wait, spent := b.Spent("alice", now); !spent || wait != time.Minute {
		t.Fatalf("Spent = %v, %v; want 1m0s, true", wait, spent)
	}
	if _, spent := b.Spent("bob", now); spent {
		t.Fatal("bob's budget was spent by alice's failures")
	}
	later := now.Add(time.Minute)
	if _, spent := b.Spent("alice", later); spent {
		t.Fatal("a refill later the budget is still spent")
	}
	if allowed, spent := b.Fail("alice", later); !allowed || !spent {
		t.Fatalf("the refilled failure: allowed %v, spent %v; want true, true", allowed, spent)
	}
}
