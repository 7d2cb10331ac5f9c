package orderprocessing_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// TestReadyOnceGatewayKeysLoaded: a replica that fetches the gateway's
// keys by URL (process.GatewayTrust, as orderprocessingd does) is not
// ready until it has had them once, even while a failed lookup holds
// further lookups back for the retry backoff; once ready it serves at
// once, and stays ready when the gateway's JWKS goes away again (its keys
// are still good). Before the check, such a replica reported ready with no
// keys and answered its first requests Unavailable (the scale-out flake).
func TestReadyOnceGatewayKeysLoaded(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var down atomic.Bool
	down.Store(true) // the gateway is not serving yet
	jwks := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(rw, "gateway starting", http.StatusServiceUnavailable)
			return
		}
		w.tokens.GatewayKeys.Handler().ServeHTTP(rw, r)
	}))
	t.Cleanup(jwks.Close)
	peers, gw, err := process.GatewayTrust{Issuer: authntest.GatewayName, JWKS: jwks.URL + keys.WellKnownPath}.Peers(logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peers.Close)
	w.gateway = &gw
	in := w.start(sqldbtest.SQLite(t))

	ready := func() (int, string) {
		t.Helper()
		res, err := http.Get(in.url + health.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// A request before the keys: Unavailable, and the cache now holds
	// lookups back for its retry backoff.
	_, err = in.client.StartCheckout(t.Context(), header(w.as("usr_alice"), &orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "TEA-GREEN-100G", Quantity: 1}},
	}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("StartCheckout without the gateway's keys: %v, want Unavailable", err)
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, health.GatewayKeys) {
		t.Fatalf("readiness without the gateway's keys = %d %q, want 503 naming %s", code, body, health.GatewayKeys)
	}
	down.Store(false)
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("readiness with the gateway serving its keys = %d %q, want 200", code, body)
	}
	// Ready means able: no backoff left between readiness and the first
	// request.
	w.checkout(in, "usr_alice")
	down.Store(true)
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("readiness once loaded, the gateway's JWKS down again = %d %q, want 200: readiness must not flap with a peer", code, body)
	}
}
