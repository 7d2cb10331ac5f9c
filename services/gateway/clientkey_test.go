package gateway

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/budget"
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
	b := budget.New[netip.Prefix](DefaultAuthFailureBurst, DefaultAuthFailureRefill, DefaultAuthFailureClients)
	for i := range DefaultAuthFailureClients * 2 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.Fail(netip.PrefixFrom(addr, 32), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(b.Size())
	t.Logf("%d clients, %.0f bytes each, %.1f MiB", b.Size(), per, per*float64(b.Size())/(1<<20))
	if b.Size() != DefaultAuthFailureClients || per*DefaultAuthFailureClients > 16<<20 {
		t.Fatalf("%d clients of %.0f bytes: more than the documented bound", b.Size(), per)
	}
	runtime.KeepAlive(b)
}
