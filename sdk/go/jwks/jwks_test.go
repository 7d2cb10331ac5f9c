package jwks_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// quiet discards the cache's reports of failed fetches, which these tests
// provoke.
var quiet = jwks.WithLogger(slog.New(slog.DiscardHandler))

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock               { return &clock{t: time.Unix(1_800_000_000, 0)} }
func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// issuerServer serves a ring's JWKS, counts fetches and can be taken down.
type issuerServer struct {
	ring    *keys.Ring
	fetches atomic.Int64
	down    atomic.Bool
}

func (s *issuerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.ring.Handler().ServeHTTP(w, r)
}

func setup(t *testing.T, clk *clock, opts ...jwks.Option) (*issuerServer, *jwks.Cache, keys.Source) {
	t.Helper()
	ring, err := keys.NewRing(keys.WithRingClock(clk.Now), keys.WithRetention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	is := &issuerServer{ring: ring}
	srv := httptest.NewServer(is)
	t.Cleanup(srv.Close)
	c, err := jwks.New(append([]jwks.Option{jwks.WithClock(clk.Now), jwks.WithHTTPClient(srv.Client()), quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	src, err := c.Add("coupons", srv.URL+keys.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	return is, c, src
}

func currentKID(t *testing.T, r *keys.Ring) string {
	t.Helper()
	k, err := r.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.KID()
}

func TestRotationWithOverlap(t *testing.T) {
	t.Parallel()
	clk := newClock()
	is, c, src := setup(t, clk)
	ctx := context.Background()

	old := currentKID(t, is.ring)
	if _, err := src.Key(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := is.ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	promoted := currentKID(t, is.ring)
	// The promoted key was published as "next" before it signed anything,
	// so the cached set already has it: no fetch.
	if _, err := src.Key(ctx, promoted); err != nil {
		t.Fatalf("promoted key: %v", err)
	}
	if _, err := src.Key(ctx, old); err != nil {
		t.Fatalf("retired key during overlap: %v", err)
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	clk.Add(time.Hour + time.Minute)
	if err := c.Refresh(ctx, "coupons"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Key(ctx, old); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("pruned key: err = %v, want ErrKeyNotFound", err)
	}
	if _, err := src.Key(ctx, promoted); err != nil {
		t.Fatalf("current key after refresh: %v", err)
	}
}

func TestIssuerDown(t *testing.T) {
	t.Parallel()
	clk := newClock()
	is, _, src := setup(t, clk, jwks.WithMaxStaleness(6*time.Hour), jwks.WithRefetchInterval(5*time.Minute))
	ctx := context.Background()
	kid := currentKID(t, is.ring)
	if _, err := src.Key(ctx, kid); err != nil {
		t.Fatal(err)
	}
	is.down.Store(true)

	steps := []struct {
		advance time.Duration
		up      bool
		want    error
	}{
		{advance: 5*time.Hour + 59*time.Minute, want: nil},               // stale but within the bound: served
		{advance: 2 * time.Minute, want: jwks.ErrStale},                  // beyond: refused
		{advance: 400 * time.Millisecond, up: true, want: jwks.ErrStale}, // back up, but within the retry backoff (0.5-1 s after one failure)
		{advance: time.Second, up: true, want: nil},                      // the retry succeeds
	}
	for i, s := range steps {
		clk.Add(s.advance)
		is.down.Store(!s.up)
		_, err := src.Key(ctx, kid)
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("step %d: err = %v, want %v", i, err, s.want)
		}
		if s.want != nil && !errors.Is(err, keys.ErrUnavailable) {
			t.Fatalf("step %d: %v does not wrap keys.ErrUnavailable", i, err)
		}
	}
}

func TestUnknownKIDFlood(t *testing.T) {
	t.Parallel()
	clk := newClock()
	is, c, src := setup(t, clk)
	ctx := context.Background()
	if err := c.Refresh(ctx, "coupons"); err != nil {
		t.Fatal(err)
	}
	// flood looks up 1,000 random kids at once and counts the answers.
	flood := func() (notFound, unavailable int) {
		var wg sync.WaitGroup
		var nf, un atomic.Int64
		for range 1000 {
			wg.Go(func() {
				_, err := src.Key(ctx, randomKID())
				if err != nil && strings.Contains(err.Error(), "%!") {
					t.Errorf("malformed error message: %v", err)
				}
				switch {
				case errors.Is(err, keys.ErrKeyNotFound):
					nf.Add(1)
				case errors.Is(err, keys.ErrUnavailable):
					un.Add(1)
				default:
					t.Errorf("random kid: err = %v, want ErrKeyNotFound or ErrUnavailable", err)
				}
			})
		}
		wg.Wait()
		return int(nf.Load()), int(un.Load())
	}
	// Right after a fetch, a missing kid may be a key published since:
	// unavailable, and no fetch.
	if nf, un := flood(); is.fetches.Load() != 1 || un != 1000 {
		t.Fatalf("flood right after a fetch: %d fetches (want 1), %d not found, %d unavailable (want 1000)", is.fetches.Load(), nf, un)
	}
	// After the refetch interval: one fetch, shared; the kid that started
	// it is confirmed unknown, the others joined a fetch that predates them
	// or came after it, within the interval.
	clk.Add(jwks.DefaultRefetchInterval)
	if nf, un := flood(); is.fetches.Load() != 2 || nf < 1 || nf+un != 1000 {
		t.Fatalf("flood after the interval: %d fetches (want 2), %d not found (want at least 1), %d unavailable", is.fetches.Load(), nf, un)
	}
	clk.Add(jwks.DefaultRefetchInterval - time.Millisecond)
	if flood(); is.fetches.Load() != 2 {
		t.Fatalf("%d fetches inside the interval, want 2", is.fetches.Load())
	}
	clk.Add(time.Millisecond)
	if flood(); is.fetches.Load() != 3 {
		t.Fatalf("%d fetches after the interval, want 3", is.fetches.Load())
	}
}

func TestFetchFailures(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(ring.Handler())
	t.Cleanup(other.Close)

	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    error
	}{
		{"slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, jwks.ErrFetch},
		{"huge with length", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("a", jwks.DefaultMaxResponseSize) + `"}`))
		}, jwks.ErrTooLarge},
		{"huge streamed", func(w http.ResponseWriter, r *http.Request) {
			for range 100 {
				_, _ = w.Write([]byte(strings.Repeat(" ", 1024)))
				w.(http.Flusher).Flush()
			}
		}, jwks.ErrTooLarge},
		{"malformed", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"keys":[{"kty":"OKP"`)) }, keys.ErrMalformedKey},
		{"html error page", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`<html>oops</html>`)) }, keys.ErrMalformedKey},
		{"status 500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, jwks.ErrFetch},
		{"redirect to another host", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+keys.WellKnownPath, http.StatusFound)
		}, jwks.ErrRedirect},
		{"redirect loop on the same host", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		}, jwks.ErrRedirect},
		{"redirect on the same host", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				ring.Handler().ServeHTTP(w, r)
				return
			}
			http.Redirect(w, r, "/moved", http.StatusMovedPermanently)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			// Only the slow issuer, which never answers, is cut off by the
			// fetch timeout; the others have no time limit a busy machine
			// could reach, so each fails for its own reason.
			timeout := time.Hour
			if tc.name == "slow" {
				timeout = 200 * time.Millisecond
			}
			c, err := jwks.New(jwks.WithFetchTimeout(timeout), quiet)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			src, err := c.Add("coupons", srv.URL+keys.WellKnownPath)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Key(context.Background(), currentKID(t, ring))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != nil && !errors.Is(err, keys.ErrUnavailable) {
				t.Fatalf("%v does not wrap keys.ErrUnavailable", err)
			}
		})
	}
}

func TestBadResponseKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var bad atomic.Bool
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bad.Load() {
			_, _ = w.Write([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"short","kid":"x"}`))
			return
		}
		ring.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := jwks.New(jwks.WithClock(clk.Now), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	src, err := c.Add("coupons", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Refresh(ctx, "coupons"); err != nil {
		t.Fatal(err)
	}
	bad.Store(true)
	if err := c.Refresh(ctx, "coupons"); !errors.Is(err, keys.ErrMalformedKey) {
		t.Fatalf("refresh: err = %v, want ErrMalformedKey", err)
	}
	if _, err := src.Key(ctx, currentKID(t, ring)); err != nil {
		t.Fatalf("last good set lost: %v", err)
	}
	if ok, failed := c.Fetches(); ok != 1 || failed != 1 {
		t.Fatalf("Fetches = %d ok, %d failed; want 1 and 1", ok, failed)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	c, err := jwks.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tests := []struct {
		name, issuer, url string
	}{
		{"relative URL", "a", "/jwks.json"},
		{"ftp URL", "b", "ftp://host/jwks.json"},
		{"empty issuer", "", "https://host/jwks.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := c.Add(tc.issuer, tc.url); !errors.Is(err, jwks.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	if _, err := jwks.New(jwks.WithRefreshInterval(0)); !errors.Is(err, jwks.ErrConfig) {
		t.Fatalf("zero refresh interval: err = %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRunRefreshesHourly runs the background refresh in a synctest bubble
// with an in-memory transport, so that an hour passes instantly.
func TestRunRefreshesHourly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ring, err := keys.NewRing()
		if err != nil {
			t.Fatal(err)
		}
		var fetches atomic.Int64
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			fetches.Add(1)
			rec := httptest.NewRecorder()
			ring.Handler().ServeHTTP(rec, r)
			return rec.Result(), nil
		})}
		c, err := jwks.New(jwks.WithHTTPClient(client), quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		src, err := c.Add("coupons", "https://coupons.internal"+keys.WellKnownPath)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()

		synctest.Wait()
		if n := fetches.Load(); n != 1 {
			t.Fatalf("%d fetches at start, want 1", n)
		}
		if err := ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		if err := ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		// The bubble's fake clock: the sleep returns, an hour later, as
		// soon as every goroutine of the bubble is blocked, and Wait
		// returns once Run's refresh is done; no real time passes.
		time.Sleep(jwks.DefaultRefreshInterval)
		synctest.Wait()
		if n := fetches.Load(); n != 2 {
			t.Fatalf("%d fetches after an hour, want 2", n)
		}
		// The key created by the second rotation is known without an
		// on-demand fetch: the background refresh found it.
		if _, err := src.Key(ctx, ring.PublicKeys()[1].KID()); err != nil {
			t.Fatal(err)
		}
		if n := fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	})
}

// TestSetURLs (issue 16): a provider whose discovery document names a new
// jwks_uri is fetched from there, without a restart.
func TestSetURLs(t *testing.T) {
	t.Parallel()
	clk := newClock()
	_, c, src := setup(t, clk)
	moved, err := keys.NewRing(keys.WithRingClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(moved.Handler())
	t.Cleanup(srv.Close)
	kid := currentKID(t, moved)
	ctx := context.Background()
	if _, err := src.Key(ctx, kid); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("key of the moved set before SetURLs: err = %v, want ErrKeyNotFound", err)
	}
	if err := c.SetURLs("coupons", srv.URL+keys.WellKnownPath); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx, "coupons"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Key(ctx, kid); err != nil {
		t.Fatalf("key of the moved set after SetURLs: %v", err)
	}
	if err := c.SetURLs("points", srv.URL); !errors.Is(err, jwks.ErrConfig) {
		t.Fatalf("SetURLs of an issuer never added: err = %v, want ErrConfig", err)
	}
	if err := c.SetURLs("coupons", "http://192.0.2.1/jwks"); !errors.Is(err, jwks.ErrConfig) {
		t.Fatalf("SetURLs to plain http elsewhere: err = %v, want ErrConfig", err)
	}
}

// TestLoaded: Loaded fetches a set never loaded on every call, even within
// the retry backoff that stops lookups (the readiness a replica needs
// before its first request), and once a set has been loaded it is nil for
// good without fetching, whatever the issuer and the set's age.
func TestLoaded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	is, c, src := setup(t, clk, jwks.WithMaxStaleness(time.Hour))
	ctx := context.Background()
	kid := currentKID(t, is.ring)
	is.down.Store(true)

	for i := range 2 { // the second within the backoff of the first failure
		if err := c.Loaded(ctx, "coupons"); !errors.Is(err, jwks.ErrFetch) {
			t.Fatalf("Loaded %d while the issuer is down: err = %v, want ErrFetch", i, err)
		}
		if got := is.fetches.Load(); got != int64(i+1) {
			t.Fatalf("Loaded %d: %d fetches, want %d", i, got, i+1)
		}
	}
	is.down.Store(false)
	// A lookup is still refused by the backoff: what readiness guards
	// against.
	if _, err := src.Key(ctx, kid); !errors.Is(err, jwks.ErrRateLimited) || !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("lookup within the backoff: err = %v, want ErrRateLimited and keys.ErrUnavailable", err)
	}
	if err := c.Loaded(ctx, "coupons"); err != nil {
		t.Fatalf("Loaded with the issuer up: %v", err)
	}
	if got := is.fetches.Load(); got != 3 {
		t.Fatalf("%d fetches after the first load, want 3", got)
	}
	if _, err := src.Key(ctx, kid); err != nil {
		t.Fatalf("lookup after Loaded: %v", err)
	}

	// Loaded once is loaded for good: no fetch, even with the issuer down
	// and the set stale.
	is.down.Store(true)
	if err := c.Refresh(ctx, "coupons"); !errors.Is(err, jwks.ErrFetch) {
		t.Fatalf("Refresh while down: err = %v, want ErrFetch", err)
	}
	clk.Add(2 * time.Hour)
	before := is.fetches.Load()
	if err := c.Loaded(ctx, "coupons"); err != nil {
		t.Fatalf("Loaded after a failed refresh and beyond the staleness: %v", err)
	}
	if got := is.fetches.Load(); got != before {
		t.Fatalf("Loaded after the first load fetched %d times", got-before)
	}

	if err := c.Loaded(ctx, "points"); !errors.Is(err, jwks.ErrConfig) {
		t.Fatalf("Loaded of an issuer never added: err = %v, want ErrConfig", err)
	}
}

// TestLoadedJoinsAndIsBounded: Loaded joins the fetch in flight rather
// than starting another, and ctx bounds its wait, not the fetch.
func TestLoadedJoinsAndIsBounded(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int64
	arrived, release := make(chan struct{}, 4), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		arrived <- struct{}{}
		<-release
		ring.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := jwks.New(jwks.WithHTTPClient(srv.Client()), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Add("coupons", srv.URL+keys.WellKnownPath); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- c.Loaded(context.Background(), "coupons") }()
	<-arrived // the fetch is in flight

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Loaded(ctx, "coupons"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Loaded with a done context during a fetch: err = %v, want context.Canceled", err)
	}
	second := make(chan error, 1)
	go func() { second <- c.Loaded(context.Background(), "coupons") }()
	close(release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatalf("Loaded: %v", err)
		}
	}
	if got := fetches.Load(); got != 1 {
		t.Fatalf("%d fetches, want 1: Loaded joins the fetch in flight", got)
	}
}
