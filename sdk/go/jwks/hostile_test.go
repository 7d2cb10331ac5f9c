package jwks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
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

// replica serves a ring's JWKS, or a fixed body instead, or fails; it
// counts the requests it gets.
type replica struct {
	ring    *keys.Ring
	body    atomic.Pointer[[]byte] // when set, served instead of the ring's set
	down    atomic.Bool            // when set, 503
	fetches atomic.Int64
	srv     *httptest.Server
}

func newReplica(t *testing.T, ring *keys.Ring) *replica {
	t.Helper()
	r := &replica{ring: ring}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replica) url() string { return r.srv.URL + keys.WellKnownPath }

func (r *replica) serve(body string) {
	b := []byte(body)
	r.body.Store(&b)
}

func (r *replica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.fetches.Add(1)
	if r.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if b := r.body.Load(); b != nil {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*b)
		return
	}
	r.ring.Handler().ServeHTTP(w, req)
}

func newCache(t *testing.T, clk *clock, opts ...jwks.Option) *jwks.Cache {
	t.Helper()
	c, err := jwks.New(append([]jwks.Option{jwks.WithClock(clk.Now), quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newRing(t *testing.T, clk *clock) *keys.Ring {
	t.Helper()
	ring, err := keys.NewRing(keys.WithRingClock(clk.Now), keys.WithRetention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func randomKID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// oneJWK is the JWK of the ring's current key with "use":"sig" replaced.
func oneJWK(t *testing.T, ring *keys.Ring, use string) string {
	t.Helper()
	k, err := ring.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(k.Public().AppendJWK(nil)), `"use":"sig"`, `"use":"`+use+`"`, 1)
}

// TestUnusableAnswerKeepsLastGoodSet (issue 14, item 1): an issuer that
// answers 200 with a set holding no key the verifier can use has failed
// like one that does not answer: the last good set stays, and before any
// good set, lookups are unavailable, not "key not found".
func TestUnusableAnswerKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ring := newRing(t, clk)
	for _, tc := range []struct{ name, body string }{
		{"empty set", `{"keys":[]}`},
		{"only a symmetric key", `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`},
		{"only an encryption key", `{"keys":[` + oneJWK(t, ring, "enc") + `]}`},
		{"only RSA keys too short to trust", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"},{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"s"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := newReplica(t, ring)
			c := newCache(t, clk)
			src, err := c.Add("coupons", r.url())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Refresh(ctx, "coupons"); err != nil {
				t.Fatal(err)
			}
			r.serve(tc.body)
			if err := c.Refresh(ctx, "coupons"); err == nil {
				t.Fatal("refresh with no usable key: err = <nil>, want an error")
			}
			if _, err := src.Key(ctx, currentKID(t, ring)); err != nil {
				t.Fatalf("last good set lost: %v", err)
			}
			// A kid the verifier never saw, while the issuer's answers are
			// refused, may be a new key: unavailable, not unknown.
			if _, err := src.Key(ctx, randomKID()); !errors.Is(err, keys.ErrUnavailable) {
				t.Fatalf("unknown kid while the answers are refused: err = %v, want keys.ErrUnavailable", err)
			}

			// No good set yet: unavailable too.
			first := newCache(t, clk)
			src, err = first.Add("coupons", r.url())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Key(ctx, currentKID(t, ring)); !errors.Is(err, keys.ErrUnavailable) {
				t.Fatalf("first answer without usable keys: err = %v, want keys.ErrUnavailable", err)
			}
		})
	}
}

// TestSetWithJunkMembers (issue 14, item 2): members the verifier cannot
// use are ignored (RFC 7517 section 5), not a reason to refuse the set.
func TestSetWithJunkMembers(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ring := newRing(t, clk)
	r := newReplica(t, ring)
	set := string(keys.MarshalJWKS(ring.PublicKeys()))
	junk := `{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short","alg":"Ed25519"},` +
		`{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","kid":"p384"},` +
		`{"kty":"ML-DSA","kid":7,"use":"sig"},` + oneJWK(t, ring, "enc") + `,`
	r.serve(strings.Replace(set, `{"keys":[`, `{"keys":[`+junk, 1))
	c := newCache(t, clk)
	src, err := c.Add("coupons", r.url())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ring.PublicKeys() {
		if _, err := src.Key(context.Background(), k.KID()); err != nil {
			t.Fatalf("key of a set with junk members: %v", err)
		}
	}
}

// TestFailedFetchRetriesInSeconds (issue 14, item 3): a verifier whose
// fetches failed (no set yet, or its last fetch failed) retries on its own
// short backoff, not on the unknown-kid refetch interval: a token is
// accepted within seconds of the issuer's return.
func TestFailedFetchRetriesInSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		hadSet  bool
		outage  time.Duration
		withinS int // the first accepted lookup, in seconds after the return
	}{
		{"no set yet, short outage", false, 2 * time.Second, 2},
		{"no set yet, long outage", false, 10*time.Minute + 30*time.Second, 31},
		{"last fetch failed", true, 10*time.Minute + 30*time.Second, 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			ring := newRing(t, clk)
			r := newReplica(t, ring)
			c := newCache(t, clk)
			src, err := c.Add("coupons", r.url())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.hadSet {
				if err := c.Refresh(ctx, "coupons"); err != nil {
					t.Fatal(err)
				}
				clk.Add(time.Hour)
			}
			// The issuer rotates while down, so the verifier needs a fetch.
			r.down.Store(true)
			if err := ring.Rotate(); err != nil {
				t.Fatal(err)
			}
			if err := ring.Rotate(); err != nil {
				t.Fatal(err)
			}
			kid := currentKID(t, ring)
			// A client retries every second through the outage.
			for range tc.outage / time.Second {
				if _, err := src.Key(ctx, kid); !errors.Is(err, keys.ErrUnavailable) {
					t.Fatalf("issuer down: err = %v, want keys.ErrUnavailable", err)
				}
				clk.Add(time.Second)
			}
			during := r.fetches.Load()
			r.down.Store(false)
			for s := 0; ; s++ {
				_, err := src.Key(ctx, kid)
				if err == nil {
					t.Logf("outage %v: %d fetches during it; first token accepted %d s after the issuer's return", tc.outage, during, s)
					break
				}
				if s == tc.withinS {
					t.Fatalf("still refused %d s after the issuer's return: %v", s, err)
				}
				clk.Add(time.Second)
			}
		})
	}
}

// TestNewKeyDuringProbe (issue 14, item 4): a token with a made-up kid
// does not hold back a genuine new key for the refetch interval: a kid
// missing from a set fetched before it was first seen is unavailable (it
// may be a key published since), found within seconds once published, and
// "not found" only after a fetch made since it was first seen.
func TestNewKeyDuringProbe(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ring := newRing(t, clk)
	r := newReplica(t, ring)
	c := newCache(t, clk)
	src, err := c.Add("coupons", r.url())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Refresh(ctx, "coupons"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	probe := randomKID()
	// The probe's lookup fetches: that fetch was made after the probe was
	// seen, so the probe is confirmed unknown.
	if _, err := src.Key(ctx, probe); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("probe: err = %v, want keys.ErrKeyNotFound", err)
	}
	// The issuer publishes a new key right after.
	if err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	fresh := ring.PublicKeys()[1].KID() // the new next key
	clk.Add(time.Second)
	if _, err := src.Key(ctx, fresh); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("new key within the refetch interval: err = %v, want keys.ErrUnavailable", err)
	}
	for s := 1; ; s++ {
		clk.Add(time.Second)
		if _, err := src.Key(ctx, fresh); err == nil {
			break
		} else if s == 10 {
			t.Fatalf("new key still refused %d s after publication: %v", s+1, err)
		}
	}
	if _, err := src.Key(ctx, probe); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("probe after a fetch made since it was seen: err = %v, want keys.ErrKeyNotFound", err)
	}
}

// TestPlainHTTPOnlyOnLoopback (issue 14, item 6): a JWKS fetched over
// plain HTTP can be replaced by anyone on the path, so http:// is refused
// except to loopback.
func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	refused := []string{
		"http://10.0.0.8/.well-known/jwks.json",
		"http://coupons:8081/.well-known/jwks.json",
		"http://coupons.internal/.well-known/jwks.json",
		"http://localhost.evil.example/jwks.json",
		"http://127.0.0.1.nip.io/jwks.json",
		"http://[fe80::1]/jwks.json",
		"http://0.0.0.0:8080/jwks.json",
	}
	allowed := []string{
		"https://10.0.0.8/.well-known/jwks.json",
		"https://coupons.internal/.well-known/jwks.json",
		"http://127.0.0.1:8081/.well-known/jwks.json",
		"http://127.3.4.5/jwks.json",
		"http://[::1]:8081/jwks.json",
		"http://localhost:8081/jwks.json",
		"http://LOCALHOST/jwks.json",
	}
	c, err := jwks.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for i, u := range refused {
		if _, err := c.Add("refused"+string(rune('a'+i)), u); !errors.Is(err, jwks.ErrConfig) {
			t.Errorf("Add(%s): err = %v, want ErrConfig", u, err)
		}
	}
	for i, u := range allowed {
		if _, err := c.Add("allowed"+string(rune('a'+i)), u); err != nil {
			t.Errorf("Add(%s): %v", u, err)
		}
	}
}

// TestFailoverAcrossURLs (issue 14, item 5): an issuer's set may be at
// several URLs (replicas sharing a ring); a fetch tries them in turn until
// one answers with usable keys, and starts with the one that answered last.
func TestFailoverAcrossURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		breakIt func(r *replica)
	}{
		{"503", func(r *replica) { r.down.Store(true) }},
		{"connection refused", func(r *replica) { r.srv.Close() }},
		{"no usable key", func(r *replica) { r.serve(`{"keys":[]}`) }},
		{"malformed", func(r *replica) { r.serve(`<html>upgrading</html>`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			ring := newRing(t, clk)
			r1, r2 := newReplica(t, ring), newReplica(t, ring)
			c := newCache(t, clk)
			src, err := c.Add("order-processing", r1.url(), r2.url())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			tc.breakIt(r1)
			if _, err := src.Key(ctx, currentKID(t, ring)); err != nil {
				t.Fatalf("first replica broken, second fine: %v", err)
			}
			// The next fetch goes to the replica that answered.
			before := r1.fetches.Load()
			if err := c.Refresh(ctx, "order-processing"); err != nil {
				t.Fatal(err)
			}
			if n := r1.fetches.Load() - before; n != 0 || r2.fetches.Load() != 2 {
				t.Fatalf("refresh asked the broken replica %d times, the good one %d times in all; want 0 and 2", n, r2.fetches.Load())
			}
			ok, failed := c.Fetches()
			if ok != 2 || failed != 1 {
				t.Fatalf("Fetches = %d ok, %d failed; want 2 and 1", ok, failed)
			}
			// Both broken: the last good set stays.
			tc.breakIt(r2)
			if err := c.Refresh(ctx, "order-processing"); err == nil {
				t.Fatal("refresh with both replicas broken succeeded")
			}
			if _, err := src.Key(ctx, currentKID(t, ring)); err != nil {
				t.Fatalf("last good set lost: %v", err)
			}
		})
	}
}

// TestRefusedAnswersCounted (item 1): answers refused for their content are
// counted apart (for metrics) and logged without their content.
func TestRefusedAnswersCounted(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ring := newRing(t, clk)
	r := newReplica(t, ring)
	var logs syncBuffer
	c := newCache(t, clk, jwks.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if _, err := c.Add("coupons", r.url()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Refresh(ctx, "coupons"); err != nil {
		t.Fatal(err)
	}
	secretish := oneJWK(t, ring, "enc") // a key's material: never logged
	r.serve(`{"keys":[` + secretish + `]}`)
	if err := c.Refresh(ctx, "coupons"); !errors.Is(err, jwks.ErrNoUsableKeys) {
		t.Fatalf("refresh: err = %v, want ErrNoUsableKeys", err)
	}
	r.down.Store(true)
	if err := c.Refresh(ctx, "coupons"); !errors.Is(err, jwks.ErrFetch) {
		t.Fatalf("refresh: err = %v, want ErrFetch", err)
	}
	if ok, failed := c.Fetches(); ok != 1 || failed != 2 || c.Refused() != 1 {
		t.Fatalf("Fetches = %d ok, %d failed, Refused = %d; want 1, 2 and 1", ok, failed, c.Refused())
	}
	out := logs.String()
	x := secretish[strings.Index(secretish, `"x":"`)+5:]
	x = x[:strings.IndexByte(x, '"')]
	if !strings.Contains(out, "jwks answer refused") || strings.Contains(out, x) {
		t.Fatalf("log lacks the refusal or shows key material:\n%s", out)
	}
}

// TestAllowInsecureHTTP (item 6): the option lets plain HTTP reach any
// host, and says so loudly.
func TestAllowInsecureHTTP(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	c, err := jwks.New(jwks.AllowInsecureHTTP(), jwks.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Add("coupons", "http://10.0.0.8/.well-known/jwks.json?token=s3cr3t"); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, "INSECURE") || !strings.Contains(out, "10.0.0.8") || strings.Contains(out, "s3cr3t") {
		t.Fatalf("no warning naming the URL (without its query):\n%s", out)
	}
	if _, err := c.Add("ftp", "ftp://10.0.0.8/jwks.json"); !errors.Is(err, jwks.ErrConfig) {
		t.Fatalf("ftp with insecure HTTP allowed: err = %v, want ErrConfig", err)
	}
}

// TestRunRetriesFailedIssuer (item 3): Run retries an issuer whose fetch
// failed on the short backoff, without waiting for a token to ask, so its
// keys are back within seconds of its return. In a synctest bubble: the
// times are the bubble's fake clock.
func TestRunRetriesFailedIssuer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ring, err := keys.NewRing()
		if err != nil {
			t.Fatal(err)
		}
		var down atomic.Bool
		down.Store(true)
		var fetches atomic.Int64
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			fetches.Add(1)
			rec := httptest.NewRecorder()
			if down.Load() {
				rec.WriteHeader(http.StatusServiceUnavailable)
			} else {
				ring.Handler().ServeHTTP(rec, r)
			}
			return rec.Result(), nil
		})}
		c, err := jwks.New(jwks.WithHTTPClient(client), quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Add("order-processing", "https://op.internal"+keys.WellKnownPath); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		// Down for ten minutes: Run keeps retrying, at most every 30 s
		// once the backoff is at its cap.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		during := fetches.Load()
		if during < 10 || during > 10*60/15+6 {
			t.Fatalf("%d fetches during a 10-minute outage, want between 10 and %d", during, 10*60/15+6)
		}
		down.Store(false)
		back := time.Now()
		for {
			if ok, _ := c.Fetches(); ok == 1 {
				break
			}
			if time.Since(back) > jwks.DefaultRetryMax {
				t.Fatalf("no successful fetch %v after the issuer's return", time.Since(back))
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		t.Logf("%d fetches during the outage; keys back %v after the issuer's return, with no token asking", during, time.Since(back))
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
