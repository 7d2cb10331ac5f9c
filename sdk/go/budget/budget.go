// Package budget keeps a budget of failures per client: a token bucket per
// key (golang.org/x/time/rate) that only failures take from, for at most a
// fixed number of clients. The gateway spends a client address's budget on
// failed authentications; the audit trail spends a caller's on the refusals
// it records.
//
// It remembers at most its capacity of clients, the one that least
// recently failed or was refused forgotten first (forgotten, a client
// comes back with a full budget), in shards so that one client's flood
// does not serialize the others. Clients that never failed take no memory.
package budget

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Budget is every client's budget of failures, by key K. It is safe for
// concurrent use.
//
// Checking before acting and spending after a failure is not atomic: a
// client with n requests in flight may fail up to n - 1 times beyond its
// budget, once.
type Budget[K comparable] struct {
	limit  rate.Limit
	burst  int
	seed   maphash.Seed
	shards [shards]shard[K]
}

// shards is the number of independently locked parts of a Budget.
const shards = 16

type shard[K comparable] struct {
	mu      sync.Mutex
	max     int
	clients map[K]*client[K]
	// Most recently failed first: a doubly linked list through the
	// clients, head and tail nil when empty.
	head, tail *client[K]
}

// client is one client's bucket, linked into its shard's recency list.
type client[K comparable] struct {
	key        K
	prev, next *client[K]
	bucket     rate.Limiter
}

// New returns a budget of burst failures per client, one more every
// refill, for at most capacity clients (rounded up to a multiple of 16).
func New[K comparable](burst int, refill time.Duration, capacity int) *Budget[K] {
	b := &Budget[K]{limit: rate.Every(refill), burst: burst, seed: maphash.MakeSeed()}
	perShard := max(1, (capacity+shards-1)/shards)
	for i := range b.shards {
		b.shards[i] = shard[K]{max: perShard, clients: make(map[K]*client[K], perShard)}
	}
	return b
}

func (b *Budget[K]) shard(key K) *shard[K] {
	return &b.shards[maphash.Comparable(b.seed, key)%shards]
}

// Spent reports whether the client at key has no failure left at now, and
// if so how long until it has one again (at least a second, whole seconds,
// for Retry-After).
func (b *Budget[K]) Spent(key K, now time.Time) (time.Duration, bool) {
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

// Fail takes one failure from the budget of the client at key. allowed
// reports whether the budget had one left (the failure is within it); spent
// whether this one spent it (true once, when the client runs out, to log
// the moment without logging every failure beyond).
func (b *Budget[K]) Fail(key K, now time.Time) (allowed, spent bool) {
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[key]
	if c == nil {
		if len(s.clients) >= s.max {
			s.evict()
		}
		c = &client[K]{key: key}
		// Filling since the zero time: full.
		c.bucket.SetBurstAt(time.Time{}, b.burst)
		c.bucket.SetLimitAt(time.Time{}, b.limit)
		s.clients[key] = c
	}
	s.touch(c)
	allowed = c.bucket.AllowN(now, 1)
	return allowed, allowed && c.bucket.TokensAt(now) < 1
}

// touch moves c to the front of the recency list.
func (s *shard[K]) touch(c *client[K]) {
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

func (s *shard[K]) unlink(c *client[K]) {
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
func (s *shard[K]) evict() {
	if c := s.tail; c != nil {
		s.unlink(c)
		delete(s.clients, c.key)
	}
}

// Size is the number of clients remembered.
func (b *Budget[K]) Size() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.clients)
		s.mu.Unlock()
	}
	return n
}
