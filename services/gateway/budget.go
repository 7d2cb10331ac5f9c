package gateway

import (
	"hash/maphash"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// budget is every client's budget of failed authentications (see
// Config.AuthFailureBurst): a token bucket per client, golang.org/x/time/rate,
// that only failures take from. It remembers at most its capacity of
// clients (Config.AuthFailureClients), the one that least recently failed
// or was refused forgotten first, in budgetShards shards so that one
// client's flood does not serialize the others. Clients that never failed
// take no memory. It is safe for concurrent use.
//
// Checking before verifying and spending after a failure is not atomic: a
// client with n requests in flight may fail up to n - 1 times beyond its
// budget, once.
type budget struct {
	limit  rate.Limit
	burst  int
	seed   maphash.Seed
	shards [budgetShards]budgetShard
}

// budgetShards is the number of independently locked parts of a budget.
const budgetShards = 16

type budgetShard struct {
	mu      sync.Mutex
	max     int
	clients map[netip.Prefix]*client
	// Most recently failed first: a doubly linked list through the
	// clients, head and tail nil when empty.
	head, tail *client
}

// client is one client's bucket, linked into its shard's recency list.
type client struct {
	key        netip.Prefix
	prev, next *client
	bucket     rate.Limiter
}

// newBudget returns a budget of burst failures, one more every refill, for
// at most capacity clients (rounded up to a multiple of budgetShards).
func newBudget(burst int, refill time.Duration, capacity int) *budget {
	b := &budget{limit: rate.Every(refill), burst: burst, seed: maphash.MakeSeed()}
	perShard := max(1, (capacity+budgetShards-1)/budgetShards)
	for i := range b.shards {
		b.shards[i] = budgetShard{max: perShard, clients: make(map[netip.Prefix]*client, perShard)}
	}
	return b
}

func (b *budget) shard(key netip.Prefix) *budgetShard {
	return &b.shards[maphash.Comparable(b.seed, key)%budgetShards]
}

// spent reports whether the client at key has no failure left at now, and
// if so how long until it has one again (at least a second, whole seconds,
// for Retry-After).
func (b *budget) spent(key netip.Prefix, now time.Time) (time.Duration, bool) {
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[key]
	if c == nil {
		return 0, false
	}
	s.touch(c) // a client refused for its budget stays remembered
	tokens := c.bucket.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := math.Ceil((1 - tokens) / float64(b.limit))
	return time.Duration(max(wait, 1)) * time.Second, true
}

// fail takes one failure from the budget of the client at key, and
// reports whether that spent the budget.
func (b *budget) fail(key netip.Prefix, now time.Time) bool {
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[key]
	if c == nil {
		if len(s.clients) >= s.max {
			s.evict()
		}
		c = &client{key: key}
		// Filling since the zero time: full.
		c.bucket.SetBurstAt(time.Time{}, b.burst)
		c.bucket.SetLimitAt(time.Time{}, b.limit)
		s.clients[key] = c
	}
	s.touch(c)
	return c.bucket.AllowN(now, 1) && c.bucket.TokensAt(now) < 1
}

// touch moves c to the front of the recency list.
func (s *budgetShard) touch(c *client) {
	if s.head == c {
		return
	}
	s.unlink(c)
	c.next = s.head
	if s.head != nil {
		s.head.prev = c
	}
	s.head = c
	if s.tail == nil {
		s.tail = c
	}
}

func (s *budgetShard) unlink(c *client) {
	if c.prev != nil {
		c.prev.next = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	if s.head == c {
		s.head = c.next
	}
	if s.tail == c {
		s.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// evict forgets the least recently active client.
func (s *budgetShard) evict() {
	if c := s.tail; c != nil {
		s.unlink(c)
		delete(s.clients, c.key)
	}
}

// size is the number of clients remembered.
func (b *budget) size() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.clients)
		s.mu.Unlock()
	}
	return n
}

// clientKey is the budget key of a request's peer address (RemoteAddr,
// "host:port"): an IPv4 address, or the /64 of an IPv6 address (what one
// subscriber is routed, and can rotate addresses within). Addresses that
// do not parse (a listener on a Unix socket) share the zero key.
func clientKey(remoteAddr string) netip.Prefix {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if addr, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Prefix{}
	}
	return prefixKey(addr)
}

// addrKey is clientKey of a connection's peer address, without formatting
// and parsing it again for TCP.
func addrKey(remote net.Addr) netip.Prefix {
	if tcp, ok := remote.(*net.TCPAddr); ok && tcp != nil {
		if addr, ok := netip.AddrFromSlice(tcp.IP); ok {
			return prefixKey(addr)
		}
		return netip.Prefix{}
	}
	if remote == nil {
		return netip.Prefix{}
	}
	return clientKey(remote.String())
}

// prefixKey is the budget key of addr: itself (unmapped from IPv6), or
// its /64.
func prefixKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}
