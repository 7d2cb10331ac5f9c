package jwks_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// The figures of RELIABILITY.md's JWKS rows come from these two tests, run
// with -v; their times are simulated (the cache's injected clock), the
// fetches real HTTP requests to a loopback issuer.

// trials is TOKENRELAY_RELIABILITY_TRIALS, or def.
func trials(def int) int {
	if n, err := strconv.Atoi(os.Getenv("TOKENRELAY_RELIABILITY_TRIALS")); err == nil && n > 0 {
		return n
	}
	return def
}

// TestProbeFloodDuringRotation: 10,000 lookups of random kids spread over
// one simulated minute (one every 6 ms), while the issuer publishes a key
// the verifier never saw, at a random time between 10 s and 50 s, and a
// client presents a token signed by it every 250 ms from then on. The flood
// costs at most one fetch per refetch interval, and the new key is
// accepted within that interval of its publication.
// TOKENRELAY_RELIABILITY_TRIALS sets the number of trials (default 3).
func TestProbeFloodDuringRotation(t *testing.T) {
	t.Parallel()
	const (
		probes = 10_000
		step   = time.Minute / probes
		retry  = 250 * time.Millisecond
	)
	var lat []time.Duration
	var fetches []int64
	var notFound, unavail, freshUnavailable int
	n := trials(3)
	for range n {
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
		publish := 10*time.Second + rand.N(40*time.Second/step)*step
		var (
			fresh     string
			published bool
			nextTry   time.Duration
			accepted  = time.Duration(-1)
			before    = r.fetches.Load()
		)
		for i := range probes {
			at := time.Duration(i) * step
			if !published && at >= publish {
				// The issuer rotates twice: it now signs with a key that
				// was in no set the verifier fetched.
				for range 2 {
					if err := ring.Rotate(); err != nil {
						t.Fatal(err)
					}
				}
				fresh, published, nextTry = currentKID(t, ring), true, at
			}
			if published && accepted < 0 && at >= nextTry {
				_, err := src.Key(ctx, fresh)
				switch {
				case err == nil:
					accepted = at - publish
				case errors.Is(err, keys.ErrUnavailable):
					freshUnavailable++
					nextTry = at + retry
				default:
					t.Fatalf("genuine new key at +%v: %v, want unavailable until accepted", at-publish, err)
				}
			}
			_, err := src.Key(ctx, randomKID())
			switch {
			case errors.Is(err, keys.ErrKeyNotFound):
				notFound++
			case errors.Is(err, keys.ErrUnavailable):
				unavail++
			default:
				t.Fatalf("probe: err = %v", err)
			}
			clk.Add(step)
		}
		f := r.fetches.Load() - before
		if limit := int64(time.Minute/jwks.DefaultRefetchInterval) + 1; f > limit {
			t.Fatalf("%d fetches in a minute, want at most %d", f, limit)
		}
		if accepted < 0 || accepted > jwks.DefaultRefetchInterval+retry {
			t.Fatalf("genuine new key accepted after %v, want within %v", accepted, jwks.DefaultRefetchInterval+retry)
		}
		lat = append(lat, accepted)
		fetches = append(fetches, f)
		r.srv.Close()
	}
	slices.Sort(lat)
	slices.Sort(fetches)
	t.Logf("%d trials of %d random-kid lookups over a minute: %d to %d JWKS fetches per minute (%d not found, %d unavailable in all); "+
		"genuine new key accepted after publication: min %v, median %v, max %v (%d unavailable answers before, in all)",
		n, probes, fetches[0], fetches[len(fetches)-1], notFound, unavail, lat[0], lat[len(lat)/2], lat[len(lat)-1], freshUnavailable)
}

// TestRecoveryAfterOutage: a verifier restarted while its issuer is down
// (no set yet), asked for a key every 100 ms, for outages of 1 to 15
// simulated minutes: how long after the issuer's return the first token is
// accepted, and how often the verifier asks during the outage.
// TOKENRELAY_RELIABILITY_TRIALS sets the number of trials (default 10).
func TestRecoveryAfterOutage(t *testing.T) {
	t.Parallel()
	n := trials(10)
	const every = 100 * time.Millisecond
	var lat []time.Duration
	var perMinute []float64
	ctx := context.Background()
	for range n {
		clk := newClock()
		ring := newRing(t, clk)
		r := newReplica(t, ring)
		c := newCache(t, clk)
		src, err := c.Add("order-processing", r.url())
		if err != nil {
			t.Fatal(err)
		}
		kid := currentKID(t, ring)
		outage := time.Minute + rand.N(14*time.Minute)
		r.down.Store(true)
		for at := time.Duration(0); at < outage; at += every {
			if _, err := src.Key(ctx, kid); !errors.Is(err, keys.ErrUnavailable) {
				t.Fatalf("issuer down: err = %v, want keys.ErrUnavailable", err)
			}
			clk.Add(every)
		}
		perMinute = append(perMinute, float64(r.fetches.Load())/outage.Minutes())
		if bound := outage.Minutes()*60/jwks.DefaultRetryMin.Seconds() + 1; float64(r.fetches.Load()) > bound {
			t.Fatalf("%d fetches in an outage of %v, more than one per %v", r.fetches.Load(), outage, jwks.DefaultRetryMin)
		}
		r.down.Store(false)
		for after := time.Duration(0); ; after += every {
			if _, err := src.Key(ctx, kid); err == nil {
				lat = append(lat, after)
				break
			}
			// A lookup may fetch a failed issuer once per DefaultRetryMin,
			// however long the outage grew Run's backoff.
			if after > jwks.DefaultRetryMin {
				t.Fatalf("still refused %v after the issuer's return", after)
			}
			clk.Add(every)
		}
		r.srv.Close()
	}
	slices.Sort(lat)
	slices.Sort(perMinute)
	t.Logf("%d trials: first token accepted after the issuer's return: min %v, median %v, p95 %v, max %v; fetches per minute during the outage: %.1f to %.1f",
		n, lat[0], lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)-1], perMinute[0], perMinute[len(perMinute)-1])
}
