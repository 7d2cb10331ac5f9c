package identity_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// TestReadinessWaitsForTheGatewayKeys: with the gateway's keys fetched by
// URL (a Gateway peer with Loaded, as identityd has), Identity is ready
// only once they have been loaded.
func TestReadinessWaitsForTheGatewayKeys(t *testing.T) {
	t.Parallel()
	w := authntest.New(t)
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	vk, err := vault.New(map[uint32][]byte{1: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	var loaded atomic.Bool
	svc, err := identity.New(t.Context(), identity.Config{
		DB: sqldbtest.SQLite(t), Vault: vk, Logger: slog.New(slog.DiscardHandler), Keys: ring, Issuer: "https://id.tokenrelay.test",
		Gateway: capability.Peer{Issuer: authntest.GatewayName, Keys: w.GatewayKeys, Loaded: func(context.Context) error {
			if !loaded.Load() {
				return errors.New("gateway keys never fetched")
			}
			return nil
		}},
		TrustDomain: authntest.TrustDomain,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	mux := http.NewServeMux()
	svc.Register(mux)
	ready := func() (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, health.Path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, health.GatewayKeys) {
		t.Fatalf("readiness before the gateway's keys = %d %q, want 503 naming %s", code, body, health.GatewayKeys)
	}
	loaded.Store(true)
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("readiness with the gateway's keys = %d %q, want 200", code, body)
	}
}
