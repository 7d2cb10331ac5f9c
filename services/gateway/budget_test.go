package gateway

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func TestClientKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.1:4000", "192.0.2.1/32"},
		{"[::ffff:192.0.2.1]:4000", "192.0.2.1/32"},
		{"[2001:db8::1]:4000", "2001:db8::/64"},
		{"[2001:db8::ffff:1%eth0]:4000", "2001:db8::/64"},
		{"192.0.2.1", "192.0.2.1/32"},
		{"@", "invalid Prefix"},
		{"", "invalid Prefix"},
	} {
		if got := clientKey(tc.addr).String(); got != tc.want {
			t.Errorf("clientKey(%q) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestBudgetBound: the budget remembers at most its capacity of clients,
// forgetting the least recently active; the one flooding now stays
// refused.
func TestBudgetBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBudget(2, time.Minute, 64)
	attacker := netip.MustParsePrefix("198.51.100.7/32")
	for i := range 10_000 {
		b.fail(attacker, now)
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.fail(netip.PrefixFrom(addr, 32), now)
		if n := b.size(); n > 64 {
			t.Fatalf("after %d clients the budget remembers %d, more than 64", i+1, n)
		}
	}
	if _, spent := b.spent(attacker, now); !spent {
		t.Fatal("the active attacker was forgotten")
	}
	first := netip.MustParsePrefix("10.0.0.0/32")
	if _, spent := b.spent(first, now); spent {
		t.Fatal("the first client was not forgotten")
	}
}

// TestBudgetMemory measures what a remembered client costs, the figure
// behind DefaultAuthFailureClients's documented bound.
func TestBudgetMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates the default bound")
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := newBudget(DefaultAuthFailureBurst, DefaultAuthFailureRefill, DefaultAuthFailureClients)
	for i := range DefaultAuthFailureClients * 2 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.fail(netip.PrefixFrom(addr, 32), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(b.size())
	t.Logf("%d clients, %.0f bytes each, %.1f MiB", b.size(), per, per*float64(b.size())/(1<<20))
	if b.size() != DefaultAuthFailureClients || per*DefaultAuthFailureClients > 16<<20 {
		t.Fatalf("%d clients of %.0f bytes: more than the documented bound", b.size(), per)
	}
	runtime.KeepAlive(b)
}
