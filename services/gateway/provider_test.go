package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/services/gateway"
)

// fakeProvider is an OpenID Connect provider in process: its discovery
// document names the JWKS of ring a or ring b, and it can be taken down.
type fakeProvider struct {
	srv   *httptest.Server
	a, b  *keys.Ring
	useB  atomic.Bool
	down  atomic.Bool
	reads atomic.Int64 // discovery documents asked for, answered or not
}

func newFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	p := &fakeProvider{a: ring(t), b: ring(t)}
	mux := http.NewServeMux()
	mux.Handle("/jwks/a", p.a.Handler())
	mux.Handle("/jwks/b", p.b.Handler())
	mux.HandleFunc(gateway.DiscoveryPath, func(w http.ResponseWriter, _ *http.Request) {
		uri := p.srv.URL + "/jwks/a"
		if p.useB.Load() {
			uri = p.srv.URL + "/jwks/b"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": uri})
	})
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == gateway.DiscoveryPath {
			p.reads.Add(1)
		}
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// eventually polls cond until it holds, failing the test when ctx ends
// first: waiting on a state, not on time.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestProviderDownAtStart (issue 16): a provider that is down when the
// gateway starts leaves it running and not ready, its tokens answered
// Unavailable (not Unauthenticated: nothing is wrong with them); Run
// retries with backoff and the gateway is ready once the provider is back.
// A provider down later keeps being trusted with its last keys, and a
// jwks_uri changed in its discovery document is followed without a
// restart.
func TestProviderDownAtStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := newFakeProvider(t)
	p.down.Store(true)
	e := start(t, func(c *gateway.Config) {
		c.Issuers = append(c.Issuers, gateway.Issuer{Issuer: p.srv.URL})
		c.DiscoveryRetry = time.Millisecond
		c.DiscoveryRefresh = 50 * time.Millisecond
		c.AuthFailureBurst = -1 // polling with a token not yet accepted must not lock the test out
	})
	if err := e.gw.Ready(ctx); !errors.Is(err, gateway.ErrNotReady) {
		t.Fatalf("Ready with the provider down = %v, want ErrNotReady", err)
	}
	tokA := access(t, issuer(t, p.srv.URL, p.a), "alice", "shop", gateway.DefaultAudience)
	wantUnavailable(t, e.srv, tokA, "provider never discovered")
	// The local issuer is served all along.
	if _, err := e.pointsClient().GetBalance(ctx, withBearer(&pointsv1.GetBalanceRequest{}, access(t, e.id, "usr_1", "shop", gateway.DefaultAudience))); err != nil {
		t.Fatalf("local token while the provider is down: %v", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- e.gw.Run(runCtx) }()
	defer func() { stop(); <-ran }()
	before := p.reads.Load()
	eventually(ctx, t, "discovery retried while down", func() bool { return p.reads.Load() > before+2 && e.gw.Ready(ctx) != nil })
	p.down.Store(false)
	eventually(ctx, t, "ready once the provider is back", func() bool { return e.gw.Ready(ctx) == nil })
	get := func(tok string) error {
		_, err := e.pointsClient().GetBalance(ctx, withBearer(&pointsv1.GetBalanceRequest{}, tok))
		return err
	}
	if err := get(tokA); err != nil {
		t.Fatalf("token of the discovered provider: %v", err)
	}
	if got := e.points.seen().claims.Subject; got != gateway.ForeignSubject(p.srv.URL, "alice") {
		t.Fatalf("sub %q, want the issuer-qualified one", got)
	}

	// Down later: the last keys stay in use and the gateway stays ready.
	p.down.Store(true)
	reads := p.reads.Load()
	eventually(ctx, t, "discovery tried while down again", func() bool { return p.reads.Load() > reads+1 })
	if err := get(access(t, issuer(t, p.srv.URL, p.a), "alice", "shop", gateway.DefaultAudience)); err != nil {
		t.Fatalf("token while the provider is down again: %v", err)
	}
	if err := e.gw.Ready(ctx); err != nil {
		t.Fatalf("Ready with a known provider down: %v", err)
	}

	// Key rotation to a new JWKS URL, picked up by the periodic discovery.
	p.down.Store(false)
	p.useB.Store(true)
	tokB := access(t, issuer(t, p.srv.URL, p.b), "alice", "shop", gateway.DefaultAudience)
	eventually(ctx, t, "token of the moved JWKS accepted", func() bool { return get(tokB) == nil })
}

// TestProviderKeyRotation: a provider that rotates its keys at the same
// jwks_uri is followed: the new key is published before it signs, and an
// unknown kid makes the gateway fetch the set again.
func TestProviderKeyRotation(t *testing.T) {
	t.Parallel()
	p := newFakeProvider(t)
	e := start(t, func(c *gateway.Config) {
		c.Issuers = append(c.Issuers, gateway.Issuer{Issuer: p.srv.URL})
	})
	if err := e.gw.Ready(t.Context()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	is := issuer(t, p.srv.URL, p.a)
	for i := range 2 {
		if _, err := e.pointsClient().GetBalance(t.Context(), withBearer(&pointsv1.GetBalanceRequest{}, access(t, is, "bob", "shop", gateway.DefaultAudience))); err != nil {
			t.Fatalf("token after %d rotations: %v", i, err)
		}
		if err := p.a.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
}
