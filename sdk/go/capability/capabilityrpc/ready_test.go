package capabilityrpc_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn/authntest"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// TestReadinessWaitsForTheGatewayKeys: a domain whose gateway peer has a
// Loaded check (keys fetched by URL) is ready only once it passes; with
// keys in process (no Loaded) readiness is the database alone.
func TestReadinessWaitsForTheGatewayKeys(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	own, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	var loaded atomic.Bool
	fetched := func(context.Context) error {
		if !loaded.Load() {
			return errors.New("gateway keys never fetched")
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		loaded func(context.Context) error
	}{{"fetched by URL", fetched}, {"in process", nil}} {
		trust := authntest.New(t).Trust(own)
		trust.Gateway.Loaded = tc.loaded
		s, err := capabilityrpc.New("payments", trust, db.SQL().PingContext, slog.New(slog.DiscardHandler), audit.New(db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		mux := http.NewServeMux()
		s.Register(mux, func(...connect.HandlerOption) (string, http.Handler) { return "/own.v1.Own/", http.NotFoundHandler() },
			refusing{}, mapErr)
		ready := func() (int, string) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, health.Path, nil))
			return rec.Code, rec.Body.String()
		}
		if tc.loaded == nil {
			if code, body := ready(); code != http.StatusOK {
				t.Fatalf("%s: readiness = %d %q, want 200", tc.name, code, body)
			}
			continue
		}
		if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, health.GatewayKeys) {
			t.Fatalf("%s, not loaded: readiness = %d %q, want 503 naming %s", tc.name, code, body, health.GatewayKeys)
		}
		loaded.Store(true)
		if code, body := ready(); code != http.StatusOK {
			t.Fatalf("%s, loaded: readiness = %d %q, want 200", tc.name, code, body)
		}
	}
}
