package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Defaults of the options.
const (
	// DefaultRefreshInterval is how often Run refetches every issuer's set.
	DefaultRefreshInterval = time.Hour
	// DefaultRefetchInterval is the least time between two on-demand
	// fetches of one issuer's set (for an unknown kid, a stale set or a
	// first fetch that failed). Five minutes turns a flood of tokens with
	// made-up kids into one request per issuer per five minutes, while a
	// legitimately new key (which a ring publishes an hour before use) is
	// still found promptly.
	DefaultRefetchInterval = 5 * time.Minute
	// DefaultMaxStaleness is how long the last good set is served after the
	// last successful fetch while the issuer is unreachable.
	DefaultMaxStaleness = 24 * time.Hour
	// DefaultFetchTimeout bounds one fetch, connection to last byte.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxResponseSize is the largest JWKS response read, in bytes.
	DefaultMaxResponseSize = 64 << 10
	// maxRedirects bounds same-host redirects.
	maxRedirects = 3
	// cacheEntries bounds the ristretto cache, in keys.
	cacheEntries = 4096
)

// Sentinel errors. Errors that leave the verifier without usable keys also
// wrap keys.ErrUnavailable; an unknown kid in a fresh set is
// keys.ErrKeyNotFound.
var (
	// ErrFetch: the request failed, timed out or returned a status other
	// than 200.
	ErrFetch = errors.New("jwks: fetch failed")
	// ErrTooLarge: the response exceeds the maximum size.
	ErrTooLarge = errors.New("jwks: response too large")
	// ErrRedirect: the issuer redirected to another scheme or host, or
	// more than three times.
	ErrRedirect = errors.New("jwks: redirect refused")
	// ErrStale: the last good set is older than the maximum staleness and
	// the issuer cannot be reached.
	ErrStale = errors.New("jwks: keys stale beyond the maximum staleness")
	// ErrRateLimited: an on-demand fetch was skipped because the issuer was
	// fetched less than the refetch interval ago.
	ErrRateLimited = errors.New("jwks: fetch rate-limited")
	// ErrConfig: invalid option or issuer registration.
	ErrConfig = errors.New("jwks: invalid configuration")
)

// Option configures a Cache.
type Option func(*Cache)

// WithHTTPClient sets the client used for fetches. Default: a client with
// http.DefaultTransport. The Cache uses a copy whose CheckRedirect refuses
// redirects to another scheme or host; the per-fetch timeout is
// WithFetchTimeout, whatever the client's Timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(k *Cache) {
		if c != nil {
			k.client = *c
		}
	}
}

// WithClock sets the clock for staleness and rate-limit decisions. Default
// time.Now. Run's ticker uses the time package (fake under testing/synctest).
func WithClock(now func() time.Time) Option { return func(k *Cache) { k.now = now } }

// WithRefreshInterval sets how often Run refetches every set. Default
// DefaultRefreshInterval.
func WithRefreshInterval(d time.Duration) Option { return func(k *Cache) { k.refresh = d } }

// WithRefetchInterval sets the least time between on-demand fetches of one
// issuer. Default DefaultRefetchInterval.
func WithRefetchInterval(d time.Duration) Option { return func(k *Cache) { k.refetch = d } }

// WithMaxStaleness sets how long after its last successful fetch a set is
// still used while its issuer is unreachable; after that, lookups fail with
// ErrStale. Default DefaultMaxStaleness.
func WithMaxStaleness(d time.Duration) Option { return func(k *Cache) { k.maxStale = d } }

// WithFetchTimeout bounds one fetch. Default DefaultFetchTimeout.
func WithFetchTimeout(d time.Duration) Option { return func(k *Cache) { k.timeout = d } }

// WithMaxResponseSize sets the largest response read, in bytes. Default
// DefaultMaxResponseSize.
func WithMaxResponseSize(n int64) Option { return func(k *Cache) { k.maxSize = n } }

// WithLogger sets where Run reports failed background refreshes. Default
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(k *Cache) { k.log = l } }

// Cache holds the JWK Sets of remote issuers. Keys live in ristretto, keyed
// by issuer and kid, backed by the last good set of each issuer, which is
// authoritative because ristretto may drop writes. It is safe for concurrent
// use.
type Cache struct {
	client   http.Client
	now      func() time.Time
	refresh  time.Duration
	refetch  time.Duration
	maxStale time.Duration
	timeout  time.Duration
	maxSize  int64
	log      *slog.Logger

	keys *ristretto.Cache[string, *entry]

	mu      sync.RWMutex
	issuers map[string]*issuer

	fetched, failed atomic.Int64 // fetches that installed a set, and the others
}

type issuer struct {
	name string
	url  string
	set  atomic.Pointer[keySet] // last good set, nil before the first fetch

	// failing: the last fetch failed, so a kid missing from the last good
	// set may be a key published since, not a made-up one.
	failing atomic.Bool

	mu          sync.Mutex
	lastAttempt time.Time // start of the last on-demand fetch
	inflight    *flight
}

type keySet struct {
	keys    map[string]*keys.PublicKey
	fetched time.Time
}

// entry is a ristretto value. It remembers its set, so that an entry written
// before a refresh that dropped its kid is never served.
type entry struct {
	key *keys.PublicKey
	set *keySet
}

type flight struct {
	done chan struct{}
	err  error
}

// New returns an empty Cache; register issuers with Add and start Run.
func New(opts ...Option) (*Cache, error) {
	c := &Cache{
		now:      time.Now,
		refresh:  DefaultRefreshInterval,
		refetch:  DefaultRefetchInterval,
		maxStale: DefaultMaxStaleness,
		timeout:  DefaultFetchTimeout,
		maxSize:  DefaultMaxResponseSize,
		log:      slog.Default(),
		issuers:  make(map[string]*issuer),
	}
	for _, o := range opts {
		o(c)
	}
	if c.refresh <= 0 || c.refetch < 0 || c.maxStale <= 0 || c.timeout <= 0 || c.maxSize <= 0 || c.now == nil || c.log == nil {
		return nil, fmt.Errorf("%w: intervals, timeout and size must be positive", ErrConfig)
	}
	c.client.CheckRedirect = sameOrigin
	var err error
	c.keys, err = ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters: 10 * cacheEntries,
		MaxCost:     cacheEntries,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c, nil
}

// sameOrigin refuses redirects that change scheme or host (a JWKS on another
// host is another issuer's keys) and long redirect chains.
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
	}
	if u := via[0].URL; req.URL.Scheme != u.Scheme || req.URL.Host != u.Host {
		return fmt.Errorf("%w: to another origin", ErrRedirect)
	}
	return nil
}

// Fetches returns how many key-set fetches this cache made since New: ok
// installed a set, failed did not (unreachable issuer, bad status, size,
// malformed set). Rate-limited lookups fetch nothing and are not counted.
func (c *Cache) Fetches() (ok, failed int64) { return c.fetched.Load(), c.failed.Load() }

// Close releases the ristretto cache. Stop Run first.
func (c *Cache) Close() { c.keys.Close() }

// Add registers issuer (the iss its tokens carry) with the URL of its JWK
// Set and returns the key source to give token.Trust. Nothing is fetched
// until the first lookup, Refresh or Run. Use https except for loopback.
func (c *Cache) Add(issuerName, jwksURL string) (keys.Source, error) {
	u, err := url.Parse(jwksURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: issuer %q: JWKS URL must be absolute http(s)", ErrConfig, issuerName)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if issuerName == "" || c.issuers[issuerName] != nil {
		return nil, fmt.Errorf("%w: issuer %q empty or added twice", ErrConfig, issuerName)
	}
	is := &issuer{name: issuerName, url: u.String()}
	c.issuers[issuerName] = is
	return source{c: c, is: is}, nil
}

type source struct {
	c  *Cache
	is *issuer
}

// Key implements keys.Source.
func (s source) Key(ctx context.Context, kid string) (*keys.PublicKey, error) {
	return s.c.key(ctx, s.is, kid)
}

// Refresh fetches issuer's set now, ignoring the refetch rate limit but
// joining a fetch already in flight.
func (c *Cache) Refresh(ctx context.Context, issuerName string) error {
	c.mu.RLock()
	is := c.issuers[issuerName]
	c.mu.RUnlock()
	if is == nil {
		return fmt.Errorf("%w: issuer %q not added", ErrConfig, issuerName)
	}
	return c.fetch(ctx, is, false)
}

// Run refreshes every issuer's set immediately and then every refresh
// interval until ctx is done; failures are logged and the last good set
// stays in use. It returns ctx.Err().
func (c *Cache) Run(ctx context.Context) error {
	t := time.NewTicker(c.refresh)
	defer t.Stop()
	for {
		c.mu.RLock()
		all := make([]*issuer, 0, len(c.issuers))
		for _, is := range c.issuers {
			all = append(all, is)
		}
		c.mu.RUnlock()
		for _, is := range all {
			if err := c.fetch(ctx, is, false); err != nil && ctx.Err() == nil {
				c.log.WarnContext(ctx, "jwks refresh failed", "issuer", is.name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Cache) key(ctx context.Context, is *issuer, kid string) (*keys.PublicKey, error) {
	if k, ok := c.lookup(is, kid); ok {
		return k, nil
	}
	// Unknown kid, stale set or no set yet: one on-demand fetch per issuer
	// per refetch interval, shared by concurrent callers.
	ferr := c.fetch(ctx, is, true)
	if k, ok := c.lookup(is, kid); ok {
		return k, nil
	}
	set := is.set.Load()
	switch {
	case set == nil:
		return nil, fmt.Errorf("%w: issuer %s: no key set: %w", keys.ErrUnavailable, is.name, ferr)
	case c.now().Sub(set.fetched) > c.maxStale:
		return nil, fmt.Errorf("%w: %w: issuer %s: %w", ErrStale, keys.ErrUnavailable, is.name, ferr)
	case ferr != nil && is.failing.Load():
		// The issuer cannot be asked: the kid may be its new key. Saying
		// "unknown key" would tell the caller its token is bad for good.
		return nil, fmt.Errorf("%w: issuer %s: kid not in the last good set, which cannot be refreshed: %w", keys.ErrUnavailable, is.name, ferr)
	default:
		return nil, fmt.Errorf("%w: issuer %s", keys.ErrKeyNotFound, is.name)
	}
}

// lookup finds kid in the issuer's last good set, through ristretto first,
// if that set is within the maximum staleness.
func (c *Cache) lookup(is *issuer, kid string) (*keys.PublicKey, bool) {
	set := is.set.Load()
	if set == nil || c.now().Sub(set.fetched) > c.maxStale {
		return nil, false
	}
	ck := is.name + "\x00" + kid
	if e, ok := c.keys.Get(ck); ok && e.set == set {
		return e.key, true
	}
	k, ok := set.keys[kid]
	if ok {
		// Re-admit what ristretto dropped or evicted.
		c.keys.Set(ck, &entry{key: k, set: set}, 1)
		c.keys.Wait()
	}
	return k, ok
}

// fetch runs one fetch of is in a single flight; with limited, it is skipped
// (ErrRateLimited) if the last on-demand fetch started less than the
// refetch interval ago. The fetch is detached from ctx so that a caller
// giving up does not fail the fetch for the others; ctx only bounds the wait.
func (c *Cache) fetch(ctx context.Context, is *issuer, limited bool) error {
	is.mu.Lock()
	f := is.inflight
	if f == nil {
		now := c.now()
		if limited && !is.lastAttempt.IsZero() && now.Sub(is.lastAttempt) < c.refetch {
			is.mu.Unlock()
			return ErrRateLimited
		}
		if limited {
			is.lastAttempt = now
		}
		f = &flight{done: make(chan struct{})}
		is.inflight = f
		go func() {
			f.err = c.get(context.WithoutCancel(ctx), is)
			is.failing.Store(f.err != nil)
			if f.err != nil {
				c.failed.Add(1)
			} else {
				c.fetched.Add(1)
			}
			is.mu.Lock()
			is.inflight = nil
			is.mu.Unlock()
			close(f.done)
		}()
	}
	is.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// get fetches and parses is's set and installs it as the last good set.
func (c *Cache) get(ctx context.Context, is *issuer) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, is.url, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFetch, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirect) {
			return fmt.Errorf("issuer %s: %w", is.name, err)
		}
		return fmt.Errorf("%w: issuer %s: %w", ErrFetch, is.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: issuer %s: status %d", ErrFetch, is.name, resp.StatusCode)
	}
	if resp.ContentLength > c.maxSize {
		return fmt.Errorf("%w: issuer %s: %d bytes", ErrTooLarge, is.name, resp.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxSize+1))
	if err != nil {
		return fmt.Errorf("%w: issuer %s: %w", ErrFetch, is.name, err)
	}
	if int64(len(body)) > c.maxSize {
		return fmt.Errorf("%w: issuer %s: over %d bytes", ErrTooLarge, is.name, c.maxSize)
	}
	pubs, err := keys.ParseJWKS(body)
	if err != nil {
		return fmt.Errorf("issuer %s: %w", is.name, err)
	}
	set := &keySet{keys: make(map[string]*keys.PublicKey, len(pubs)), fetched: c.now()}
	for _, k := range pubs {
		set.keys[k.KID()] = k
	}
	is.set.Store(set)
	for kid, k := range set.keys {
		c.keys.Set(is.name+"\x00"+kid, &entry{key: k, set: set}, 1)
	}
	c.keys.Wait()
	return nil
}
