package scaleout_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// TestIssuerUnreachableDuringRotation is the verifier's side of an issuer
// whose JWKS becomes unreachable (its listener closed: connections refused)
// while it rotates keys, through the same jwks.Cache and token.Verifier the
// services use, with the cache's clock moved forward so that the staleness
// bound (6 h here, 24 h by default) is crossed in an instant. The
// process-level half (tokens accepted by both OrderProcessing replicas
// while Coupons is killed after a rotation) is in TestConcurrencyScaledOut.
func TestIssuerUnreachableDuringRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ring, err := keys.NewRing(keys.WithRetention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ring.Handler())
	defer srv.Close()
	clk := &fakeClock{t: time.Now()}
	const maxStale = 6 * time.Hour
	cache, err := jwks.New(jwks.WithClock(clk.Now), jwks.WithMaxStaleness(maxStale), jwks.WithRefetchInterval(5*time.Minute),
		jwks.WithHTTPClient(srv.Client())) // no short fetch timeout: the closed issuer refuses connections at once
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	src, err := cache.Add("coupons", srv.URL+keys.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(token.Trust("coupons", src, token.Accept(token.Confirmation, "order-processing"), token.Namespace("coupons")))
	if err != nil {
		t.Fatal(err)
	}
	defer verifier.Close()
	issuer, err := token.NewIssuer("coupons", ring)
	if err != nil {
		t.Fatal(err)
	}
	issue := func() string {
		t.Helper()
		raw, _, err := token.Issue(ctx, issuer, token.Confirmation, token.ConfirmationClaims{
			Registered: token.Registered{Subject: "usr_alice", Audience: []string{"order-processing"}}, OrderProcessingID: "op_1",
			Capabilities: []string{"coupons:redeem"}, Settlement: token.Settlement{AmountMinor: 250, Currency: "EUR"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	verify := func(raw string) error {
		_, err := token.Verify(ctx, verifier, token.Confirmation, raw)
		return err
	}

	signedByOld := issue()
	if err := verify(signedByOld); err != nil {
		t.Fatalf("issuer up: %v", err)
	}
	// The issuer rotates (the promoted key was published as next), then
	// becomes unreachable.
	if err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	signedByPromoted := []string{issue(), issue(), issue(), issue()}
	srv.Close()
	// The issuer rotates once more while unreachable: the verifier never
	// saw that key. Its token is not known to be bad, so the refusal is
	// Unavailable (retry later), not an invalid token. Before the fix in
	// jwks (issue 10) this was keys.ErrKeyNotFound: invalid_argument.
	if err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	signedByUnseen := issue()
	if err := ring.Rotate(); err != nil { // the ring signs with it no more; the cached keys stay
		t.Fatal(err)
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		raw     string
		want    connect.Code // 0: verified
	}{
		{"retired key, issuer just gone", 0, signedByOld, 0},
		{"promoted key, issuer just gone", 0, signedByPromoted[0], 0},
		{"promoted key, an hour later", time.Hour, signedByPromoted[1], 0},
		// The unseen key's lookup fetches (the refetch interval has passed),
		// fails, and the next lookup, rate-limited, says the same.
		{"key never published while up", 0, signedByUnseen, connect.CodeUnavailable},
		{"key never published while up, again", time.Second, signedByUnseen, connect.CodeUnavailable},
		{"promoted key, a minute within the bound", maxStale - time.Hour - time.Second - time.Minute, signedByPromoted[2], 0},
		{"promoted key, a minute beyond the bound", 2 * time.Minute, signedByPromoted[3], connect.CodeUnavailable},
		{"retired key, beyond the bound", 0, signedByOld, connect.CodeUnavailable},
	} {
		clk.Add(step.advance)
		err := verify(step.raw)
		if step.want == 0 {
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			continue
		}
		ce := rpcerr.Token(err, rpcerr.AsArgument())
		stale := step.raw != signedByUnseen
		if ce == nil || ce.Code() != step.want || stale != errors.Is(err, jwks.ErrStale) || !errors.Is(err, keys.ErrUnavailable) {
			t.Fatalf("%s: %v (code %v), want %v wrapping keys.ErrUnavailable (and jwks.ErrStale: %v)", step.name, err, ce.Code(), step.want, stale)
		}
		if strings.Contains(ce.Message(), step.raw[len(step.raw)-16:]) {
			t.Fatalf("%s: the error echoes the token", step.name)
		}
		t.Logf("%s: %v -> %v", step.name, err, ce)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
