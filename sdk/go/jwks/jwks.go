package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
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
	// DefaultRefetchInterval is the least time between the start of an
	// issuer's last fetch and an on-demand fetch for a kid missing from its
	// set. Five seconds bounds a flood of tokens with made-up kids to 12
	// requests per issuer per minute, and makes a key published since the
	// last fetch verifiable within seconds.
	DefaultRefetchInterval = 5 * time.Second
	// DefaultRetryMin and DefaultRetryMax govern the retries of an issuer
	// whose last fetch failed (or whose set had no usable key): lookups may
	// fetch it again once per DefaultRetryMin; Run retries it after
	// DefaultRetryMin, doubling with each further failure up to
	// DefaultRetryMax, each delay jittered down to half its value.
	DefaultRetryMin = time.Second
	DefaultRetryMax = 30 * time.Second
	// DefaultMaxStaleness is how long the last good set is served after the
	// last successful fetch while the issuer is unreachable.
	DefaultMaxStaleness = 24 * time.Hour
	// DefaultFetchTimeout bounds one request to one URL, connection to last
	// byte.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxResponseSize is the largest JWKS response read, in bytes.
	DefaultMaxResponseSize = 64 << 10
	// maxRedirects bounds same-host redirects.
	maxRedirects = 3
	// cacheEntries bounds the ristretto cache, in keys.
	cacheEntries = 4096
	// maxKIDLen is the longest kid keys.ParseJWKS accepts: a longer one is
	// in no set, and is not worth a fetch.
	maxKIDLen = 256
	// maxPending bounds the unknown kids remembered per issuer.
	maxPending = 1024
)

// Sentinel errors. Errors that leave the verifier without usable keys also
// wrap keys.ErrUnavailable; an unknown kid confirmed absent from the
// issuer's current set is keys.ErrKeyNotFound.
var (
	// ErrFetch: the request failed, timed out or returned a status other
	// than 200.
	ErrFetch = errors.New("jwks: fetch failed")
	// ErrTooLarge: the response exceeds the maximum size.
	ErrTooLarge = errors.New("jwks: response too large")
	// ErrRedirect: the issuer redirected to another scheme or host, or
	// more than three times.
	ErrRedirect = errors.New("jwks: redirect refused")
	// ErrNoUsableKeys: the issuer answered with a set holding no key the
	// verifier can use (empty, or only keys of other types or uses). It is
	// a failed fetch: the last good set stays.
	ErrNoUsableKeys = errors.New("jwks: no usable key in the set")
	// ErrStale: the last good set is older than the maximum staleness and
	// the issuer cannot be reached.
	ErrStale = errors.New("jwks: keys stale beyond the maximum staleness")
	// ErrRateLimited: an on-demand fetch was skipped: the issuer was
	// fetched less than the refetch interval ago, or its last fetch failed
	// and its retry backoff has not elapsed.
	ErrRateLimited = errors.New("jwks: fetch rate-limited")
	// ErrConfig: invalid option or issuer registration.
	ErrConfig = errors.New("jwks: invalid configuration")

	errUnconfirmed = errors.New("jwks: no fetch started since the kid was first seen has answered")
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

// WithClock sets the clock for staleness, rate-limit and backoff
// decisions. Default time.Now. Run's timers use the time package (fake
// under testing/synctest).
func WithClock(now func() time.Time) Option { return func(k *Cache) { k.now = now } }

// WithRefreshInterval sets how often Run refetches every set. Default
// DefaultRefreshInterval.
func WithRefreshInterval(d time.Duration) Option { return func(k *Cache) { k.refresh = d } }

// WithRefetchInterval sets the least time between the start of an
// issuer's last fetch and an on-demand fetch for an unknown kid. Default
// DefaultRefetchInterval. It is also how long a genuinely new key may be
// refused as unavailable after a fetch that predates it.
func WithRefetchInterval(d time.Duration) Option { return func(k *Cache) { k.refetch = d } }

// WithRetryBackoff sets the backoff of an issuer whose last fetch failed:
// from min, doubling to at most max, jittered. Default DefaultRetryMin and
// DefaultRetryMax.
func WithRetryBackoff(min, max time.Duration) Option {
	return func(k *Cache) { k.retryMin, k.retryMax = min, max }
}

// WithMaxStaleness sets how long after its last successful fetch a set is
// still used while its issuer is unreachable; after that, lookups fail with
// ErrStale. Default DefaultMaxStaleness.
func WithMaxStaleness(d time.Duration) Option { return func(k *Cache) { k.maxStale = d } }

// WithFetchTimeout bounds one request to one URL. Default
// DefaultFetchTimeout.
func WithFetchTimeout(d time.Duration) Option { return func(k *Cache) { k.timeout = d } }

// WithMaxResponseSize sets the largest response read, in bytes. Default
// DefaultMaxResponseSize.
func WithMaxResponseSize(n int64) Option { return func(k *Cache) { k.maxSize = n } }

// WithLogger sets where failed and refused fetches are reported. Default
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(k *Cache) { k.log = l } }

// AllowInsecureHTTP lets Add accept plain http:// JWKS URLs to any host.
// Default: http:// only to loopback (127.0.0.0/8, ::1, localhost), https
// elsewhere. Over plain HTTP anyone on the network path can replace an
// issuer's keys and so forge its tokens: use it only on a private network
// you trust as much as the issuer. Add logs a warning for each such URL.
func AllowInsecureHTTP() Option { return func(k *Cache) { k.insecureHTTP = true } }

// Cache holds the JWK Sets of remote issuers. Keys live in ristretto, keyed
// by issuer and kid, backed by the last good set of each issuer, which is
// authoritative because ristretto may drop writes. It is safe for concurrent
// use.
type Cache struct {
	client       http.Client
	now          func() time.Time
	refresh      time.Duration
	refetch      time.Duration
	retryMin     time.Duration
	retryMax     time.Duration
	maxStale     time.Duration
	timeout      time.Duration
	maxSize      int64
	log          *slog.Logger
	insecureHTTP bool

	keys *ristretto.Cache[string, *entry]

	mu      sync.RWMutex
	issuers map[string]*issuer

	// changed wakes Run when a fetch ends, so that it schedules the retry
	// of an issuer whose fetch failed.
	changed chan struct{}

	// Requests, one per URL tried: answers installed as the set, the
	// others, and of those the answers refused for their content.
	fetched, failed, refused atomic.Int64
}

type issuer struct {
	name      string
	urls      atomic.Pointer[[]*url.URL] // replaced by SetURLs
	preferred atomic.Int32               // index of the URL that answered last

	set atomic.Pointer[keySet] // last good set, nil before the first fetch

	mu        sync.Mutex
	inflight  *flight
	started   uint64    // fetches started
	confirmed uint64    // number of the latest successful fetch
	lastStart time.Time // start of the latest fetch
	failures  int       // consecutive failed fetches, 0 after a success
	retryAt   time.Time // while failures > 0: Run's next retry
	lastErr   error     // while failures > 0: why the last fetch failed
	// pending remembers each kid missing from the set by the number of
	// fetches started when it was first seen: a later fetch that does not
	// have it confirms it unknown.
	pending map[string]uint64
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
		retryMin: DefaultRetryMin,
		retryMax: DefaultRetryMax,
		maxStale: DefaultMaxStaleness,
		timeout:  DefaultFetchTimeout,
		maxSize:  DefaultMaxResponseSize,
		log:      slog.Default(),
		issuers:  make(map[string]*issuer),
		changed:  make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	if c.refresh <= 0 || c.refetch < 0 || c.retryMin <= 0 || c.retryMax < c.retryMin || c.maxStale <= 0 || c.timeout <= 0 || c.maxSize <= 0 || c.now == nil || c.log == nil {
		return nil, fmt.Errorf("%w: intervals, timeout and size must be positive, and the retry maximum at least its minimum", ErrConfig)
	}
	c.client.CheckRedirect = sameOrigin
	var err error
	c.keys, err = ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        10 * cacheEntries,
		MaxCost:            cacheEntries,
		BufferItems:        64,
		IgnoreInternalCost: true, // every key costs 1, so MaxCost counts keys
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

// Fetches returns how many requests for key sets this cache made since New,
// one per URL tried: ok answered a set that was installed, failed did not
// (unreachable URL, bad status, size, malformed set, no usable key; see
// Refused). Lookups that fetch nothing (rate limit, backoff) are not
// counted.
func (c *Cache) Fetches() (ok, failed int64) { return c.fetched.Load(), c.failed.Load() }

// Refused returns how many of the failed fetches got a 200 answer whose
// content was refused: too large, malformed, or without a usable key
// (ErrNoUsableKeys). Each is also logged, without its content.
func (c *Cache) Refused() int64 { return c.refused.Load() }

// Close releases the ristretto cache. Stop Run first.
func (c *Cache) Close() { c.keys.Close() }

// Add registers issuer (the iss its tokens carry) with the URLs of its JWK
// Set and returns the key source to give token.Trust. Several URLs are
// replicas of one set (or a shared endpoint and a replica): each fetch
// tries them in turn, starting with the one that answered last, until one
// answers with a usable set. URLs must be https, or http to a loopback host
// (127.0.0.0/8, ::1, localhost) unless AllowInsecureHTTP. Nothing is
// fetched until the first lookup, Refresh or Run.
func (c *Cache) Add(issuerName string, jwksURLs ...string) (keys.Source, error) {
	urls, err := c.parseURLs(issuerName, jwksURLs)
	if err != nil {
		return nil, err
	}
	is := &issuer{name: issuerName, pending: make(map[string]uint64)}
	is.urls.Store(&urls)
	c.mu.Lock()
	defer c.mu.Unlock()
	if issuerName == "" || c.issuers[issuerName] != nil {
		return nil, fmt.Errorf("%w: issuer %q empty or added twice", ErrConfig, issuerName)
	}
	c.issuers[issuerName] = is
	c.warnInsecure(issuerName, urls)
	return source{c: c, is: is}, nil
}

// SetURLs replaces the URLs of the JWK Set of an added issuer, as when its
// OpenID Connect discovery document names another jwks_uri, with the
// rules of Add. The keys already fetched stay in use until a fetch from
// the new URLs succeeds; the next lookup of an unknown kid, Refresh or Run
// fetches from them.
func (c *Cache) SetURLs(issuerName string, jwksURLs ...string) error {
	urls, err := c.parseURLs(issuerName, jwksURLs)
	if err != nil {
		return err
	}
	c.mu.RLock()
	is := c.issuers[issuerName]
	c.mu.RUnlock()
	if is == nil {
		return fmt.Errorf("%w: issuer %q not added", ErrConfig, issuerName)
	}
	is.preferred.Store(0)
	is.urls.Store(&urls)
	c.warnInsecure(issuerName, urls)
	return nil
}

// parseURLs checks the JWKS URLs of an issuer.
func (c *Cache) parseURLs(issuerName string, jwksURLs []string) ([]*url.URL, error) {
	if len(jwksURLs) == 0 {
		return nil, fmt.Errorf("%w: issuer %q: no JWKS URL", ErrConfig, issuerName)
	}
	var urls []*url.URL
	for _, raw := range jwksURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%w: issuer %q: JWKS URL must be absolute http(s)", ErrConfig, issuerName)
		}
		if u.Scheme == "http" && !loopback(u.Hostname()) && !c.insecureHTTP {
			return nil, fmt.Errorf("%w: issuer %q: JWKS URL %s: plain http only to a loopback host; use https (or allow insecure HTTP on a trusted private network)", ErrConfig, issuerName, safeURL(u))
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// warnInsecure logs every plain-http URL to a host other than loopback.
func (c *Cache) warnInsecure(issuerName string, urls []*url.URL) {
	for _, u := range urls {
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			c.log.Warn("jwks: INSECURE: issuer keys fetched over plain HTTP; anyone on the network path can forge this issuer's tokens",
				"issuer", issuerName, "url", safeURL(u))
		}
	}
}

// loopback reports whether host (a URL's Hostname) is a loopback address or
// localhost, which never leaves the machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// safeURL is u for logs and errors: without user information, query or
// fragment, which might carry a secret.
func safeURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

type source struct {
	c  *Cache
	is *issuer
}

// Key implements keys.Source.
func (s source) Key(ctx context.Context, kid string) (*keys.PublicKey, error) {
	return s.c.key(ctx, s.is, kid)
}

// Refresh fetches issuer's set now, ignoring the refetch rate limit and
// the retry backoff, but joining a fetch already in flight.
func (c *Cache) Refresh(ctx context.Context, issuerName string) error {
	c.mu.RLock()
	is := c.issuers[issuerName]
	c.mu.RUnlock()
	if is == nil {
		return fmt.Errorf("%w: issuer %q not added", ErrConfig, issuerName)
	}
	return c.fetch(ctx, is)
}

// Loaded reports whether issuer's set has ever been fetched successfully:
// nil if it has. If it never has, Loaded fetches it now as Refresh does
// (ignoring the refetch rate limit and the retry backoff, joining a fetch
// already in flight, ctx bounding the wait) and returns that fetch's
// error, or nil if it installed a set. Once a set has been loaded, Loaded
// never fetches again and stays nil, even when later fetches fail or the
// set grows stale: serving or refusing old keys is the lookups' concern.
// It is a readiness check: a verifier is not ready to serve until it has
// had its issuer's keys once, and then it must not flap with the issuer.
// An issuer not added is an ErrConfig error.
func (c *Cache) Loaded(ctx context.Context, issuerName string) error {
	c.mu.RLock()
	is := c.issuers[issuerName]
	c.mu.RUnlock()
	if is == nil {
		return fmt.Errorf("%w: issuer %q not added", ErrConfig, issuerName)
	}
	if is.set.Load() != nil {
		return nil
	}
	err := c.fetch(ctx, is)
	if is.set.Load() != nil {
		return nil // loaded, by this fetch or one that ended meanwhile
	}
	if err == nil {
		err = fmt.Errorf("%w: issuer %s: no key set", keys.ErrUnavailable, is.name)
	}
	return err
}

// Run refreshes every issuer's set immediately and then every refresh
// interval until ctx is done, and retries an issuer whose fetch failed
// (also on demand) when its backoff has elapsed, so that its keys are back
// within seconds of its return even if no token asks for them. Failures are
// logged and the last good set stays in use. It returns ctx.Err().
func (c *Cache) Run(ctx context.Context) error {
	tick := time.NewTicker(c.refresh)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	c.fetchAll(ctx, c.all(func(*issuer) bool { return true }))
	for {
		wait, ok := c.nextRetry()
		retry.Stop()
		var retryC <-chan time.Time
		if ok {
			retry.Reset(wait)
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			c.fetchAll(ctx, c.all(func(*issuer) bool { return true }))
		case <-retryC:
			now := c.now()
			c.fetchAll(ctx, c.all(func(is *issuer) bool {
				is.mu.Lock()
				defer is.mu.Unlock()
				return is.failures > 0 && !now.Before(is.retryAt)
			}))
		case <-c.changed:
		}
	}
}

// all returns the issuers for which keep is true.
func (c *Cache) all(keep func(*issuer) bool) []*issuer {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*issuer
	for _, is := range c.issuers {
		if keep(is) {
			out = append(out, is)
		}
	}
	return out
}

// fetchAll fetches the issuers concurrently, so that one slow issuer does
// not delay the others; failures are logged by the fetch.
func (c *Cache) fetchAll(ctx context.Context, issuers []*issuer) {
	var wg sync.WaitGroup
	for _, is := range issuers {
		wg.Go(func() { _ = c.fetch(ctx, is) })
	}
	wg.Wait()
}

// nextRetry returns how long until the earliest retry of an issuer whose
// last fetch failed, if any.
func (c *Cache) nextRetry() (time.Duration, bool) {
	var at time.Time
	for _, is := range c.all(func(*issuer) bool { return true }) {
		is.mu.Lock()
		if is.failures > 0 && (at.IsZero() || is.retryAt.Before(at)) {
			at = is.retryAt
		}
		is.mu.Unlock()
	}
	if at.IsZero() {
		return 0, false
	}
	return max(at.Sub(c.now()), 0), true
}

func (c *Cache) key(ctx context.Context, is *issuer, kid string) (*keys.PublicKey, error) {
	if k, ok := c.lookup(is, kid); ok {
		return k, nil
	}
	if kid == "" || len(kid) > maxKIDLen {
		// No set holds such a kid (keys.ParseJWKS ignores its key).
		return nil, fmt.Errorf("%w: issuer %s", keys.ErrKeyNotFound, is.name)
	}
	// Unknown kid, stale set or no set yet.
	is.mu.Lock()
	seen, ok := is.pending[kid]
	if !ok {
		seen = is.started
		is.remember(kid, seen)
	}
	f, ferr := c.onDemand(ctx, is)
	is.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
			ferr = f.err
		case <-ctx.Done():
			ferr = ctx.Err()
		}
	}
	if k, ok := c.lookup(is, kid); ok {
		is.mu.Lock()
		delete(is.pending, kid)
		is.mu.Unlock()
		return k, nil
	}
	is.mu.Lock()
	confirmed := is.confirmed > seen
	is.mu.Unlock()
	if ferr == nil {
		ferr = errUnconfirmed // joined a fetch that started before the kid was seen
	}
	set := is.set.Load()
	switch {
	case set == nil:
		return nil, fmt.Errorf("%w: issuer %s: no key set: %w", keys.ErrUnavailable, is.name, ferr)
	case c.now().Sub(set.fetched) > c.maxStale:
		return nil, fmt.Errorf("%w: %w: issuer %s: %w", ErrStale, keys.ErrUnavailable, is.name, ferr)
	case confirmed:
		return nil, fmt.Errorf("%w: issuer %s", keys.ErrKeyNotFound, is.name)
	default:
		// No fetch made since the kid was first seen has answered: it may
		// be a key published since the last one. Saying "unknown key"
		// would tell the caller its token is bad for good.
		return nil, fmt.Errorf("%w: issuer %s: kid not in the key set, which cannot be confirmed current yet: %w", keys.ErrUnavailable, is.name, ferr)
	}
}

// remember records that kid, missing from the set, was first seen when n
// fetches had started; is.mu is held.
func (is *issuer) remember(kid string, n uint64) {
	if len(is.pending) >= maxPending {
		for k := range is.pending { // any one: forgetting a kid only delays its "not found"
			delete(is.pending, k)
			break
		}
	}
	is.pending[kid] = n
}

// onDemand returns the fetch a lookup that missed waits for: the one in
// flight, or a new one if the issuer may be fetched now; else nil and why
// not. is.mu is held.
func (c *Cache) onDemand(ctx context.Context, is *issuer) (*flight, error) {
	if is.inflight != nil {
		return is.inflight, nil
	}
	now := c.now()
	switch {
	case is.failures > 0:
		// A failed issuer is retried on demand at most once per retryMin
		// (single flight), whatever the refetch interval and however long
		// Run's backoff has grown: a lookup is someone waiting, and the
		// issuer may be back. Without lookups, Run retries on the backoff.
		if now.Sub(is.lastStart) < c.retryMin {
			return nil, fmt.Errorf("%w: retry in %v after %d failed fetches: %w", ErrRateLimited, is.lastStart.Add(c.retryMin).Sub(now).Round(time.Millisecond), is.failures, is.lastErr)
		}
	case is.set.Load() != nil:
		if now.Sub(is.lastStart) < c.refetch {
			return nil, ErrRateLimited
		}
	}
	return c.start(ctx, is, now), nil
}

// fetch runs one fetch of is, or joins the one in flight. The fetch is
// detached from ctx so that a caller giving up does not fail the fetch for
// the others; ctx only bounds the wait.
func (c *Cache) fetch(ctx context.Context, is *issuer) error {
	is.mu.Lock()
	f := is.inflight
	if f == nil {
		f = c.start(ctx, is, c.now())
	}
	is.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start starts a fetch of is in a single flight; is.mu is held.
func (c *Cache) start(ctx context.Context, is *issuer, now time.Time) *flight {
	is.started++
	n := is.started
	is.lastStart = now
	f := &flight{done: make(chan struct{})}
	is.inflight = f
	go func() {
		old := is.set.Load()
		err := c.get(context.WithoutCancel(ctx), is)
		is.mu.Lock()
		failures := is.failures
		var wait time.Duration
		if err == nil {
			is.failures, is.retryAt, is.lastErr = 0, time.Time{}, nil
			is.confirmed = max(is.confirmed, n)
			if old != nil {
				// A kid this fetch dropped (a retired key pruned) is
				// confirmed unknown by it, as if first seen just before.
				set := is.set.Load()
				for kid := range old.keys {
					if _, ok := set.keys[kid]; !ok {
						is.remember(kid, n-1)
					}
				}
			}
		} else {
			is.failures++
			failures = is.failures
			wait = c.backoff(is.failures)
			is.retryAt = c.now().Add(wait)
			is.lastErr = err
		}
		is.inflight = nil
		is.mu.Unlock()
		switch {
		case err != nil:
			attrs := []any{"issuer", is.name, "failures", failures, "retry_in", wait.Round(time.Millisecond), "err", err}
			if set := is.set.Load(); set != nil {
				attrs = append(attrs, "last_good_age", c.now().Sub(set.fetched).Round(time.Second))
			}
			c.log.WarnContext(ctx, "jwks fetch failed; keeping the last good keys", attrs...)
		case failures > 0:
			c.log.InfoContext(ctx, "jwks fetch recovered", "issuer", is.name, "after_failures", failures)
		}
		select {
		case c.changed <- struct{}{}:
		default:
		}
		f.err = err
		close(f.done)
	}()
	return f
}

// backoff returns the wait after the nth consecutive failed fetch: from
// retryMin doubling to retryMax, jittered down to half, so that verifiers
// restarted together do not retry in step.
func (c *Cache) backoff(n int) time.Duration {
	d := c.retryMin
	for i := 1; i < n && d < c.retryMax; i++ {
		d *= 2
	}
	d = min(d, c.retryMax)
	return d/2 + rand.N(d/2+1)
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

// get fetches is's set from its URLs in turn, starting with the one that
// answered last, and installs the first usable one as the last good set.
func (c *Cache) get(ctx context.Context, is *issuer) error {
	urls := *is.urls.Load()
	first := int(is.preferred.Load()) % len(urls)
	var errs []error
	for i := range urls {
		n := (first + i) % len(urls)
		pubs, err := c.getOne(ctx, is, urls[n])
		if err != nil {
			c.failed.Add(1)
			errs = append(errs, err)
			continue
		}
		c.fetched.Add(1)
		is.preferred.Store(int32(n))
		set := &keySet{keys: make(map[string]*keys.PublicKey, len(pubs)), fetched: c.now()}
		for _, k := range pubs {
			set.keys[k.KID()] = k
		}
		is.set.Store(set)
		for kid, k := range set.keys {
			c.keys.Set(is.name+"\x00"+kid, &entry{key: k, set: set}, 1)
		}
		c.keys.Wait()
		if len(errs) > 0 {
			c.log.WarnContext(ctx, "jwks fetched from another URL after failures", "issuer", is.name, "url", safeURL(urls[n]), "err", errors.Join(errs...))
		}
		return nil
	}
	return errors.Join(errs...)
}

// getOne fetches and parses the set at u; an answer without a usable key
// is an error (ErrNoUsableKeys).
func (c *Cache) getOne(ctx context.Context, is *issuer, u *url.URL) ([]*keys.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer %s: %w", ErrFetch, is.name, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirect) {
			return nil, fmt.Errorf("issuer %s: %w", is.name, err)
		}
		return nil, fmt.Errorf("%w: issuer %s: %w", ErrFetch, is.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: issuer %s: %s: status %d", ErrFetch, is.name, safeURL(u), resp.StatusCode)
	}
	pubs, err := c.parse(resp, is, u)
	if err != nil && !errors.Is(err, ErrFetch) {
		// The issuer answered, with nothing usable: report it (never the
		// content), as an operator must fix the issuer.
		c.refused.Add(1)
		c.log.WarnContext(ctx, "jwks answer refused", "issuer", is.name, "url", safeURL(u), "err", err)
	}
	return pubs, err
}

// parse reads a 200 answer's set.
func (c *Cache) parse(resp *http.Response, is *issuer, u *url.URL) ([]*keys.PublicKey, error) {
	if resp.ContentLength > c.maxSize {
		return nil, fmt.Errorf("%w: issuer %s: %s: %d bytes", ErrTooLarge, is.name, safeURL(u), resp.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: issuer %s: %s: %w", ErrFetch, is.name, safeURL(u), err)
	}
	if int64(len(body)) > c.maxSize {
		return nil, fmt.Errorf("%w: issuer %s: %s: over %d bytes", ErrTooLarge, is.name, safeURL(u), c.maxSize)
	}
	pubs, err := keys.ParseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %s: %w", is.name, safeURL(u), err)
	}
	if len(pubs) == 0 {
		return nil, fmt.Errorf("%w: issuer %s: %s", ErrNoUsableKeys, is.name, safeURL(u))
	}
	return pubs, nil
}
