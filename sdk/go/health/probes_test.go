package health_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/health"
)

// down is a database that is down.
func down(context.Context) error { return errors.New("dial tcp 10.0.0.9:5432: connection refused") }

// TestProbes: liveness answers while a dependency is down, readiness does
// not, whether the probes come from Mount or from Probes in front of a
// service's own readiness at /healthz; other paths pass through.
func TestProbes(t *testing.T) {
	t.Parallel()
	mounted := http.NewServeMux()
	health.Mount(mounted, map[string]health.Check{"database": down})
	service := http.NewServeMux()
	service.Handle("GET "+health.Path, health.Handler(map[string]health.Check{"database": down}))
	service.Handle("POST /rpc", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for name, h := range map[string]http.Handler{"Mount": mounted, "Probes": health.Probes(service)} {
		for _, tc := range []struct {
			method, path string
			code         int
			body         string
		}{
			{http.MethodGet, health.LivePath, 200, "ok\n"},
			{http.MethodHead, health.LivePath, 200, ""},
			{http.MethodGet, health.ReadyPath, 503, "unhealthy: database\n"},
			{http.MethodGet, health.Path, 503, "unhealthy: database\n"},
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
				t.Errorf("%s: %s %s = %d %q, want %d %q", name, tc.method, tc.path, rec.Code, rec.Body, tc.code, tc.body)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: %s %s: Cache-Control %q", name, tc.method, tc.path, cc)
			}
		}
	}
	rec := httptest.NewRecorder()
	health.Probes(service).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/rpc", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("POST /rpc through Probes = %d", rec.Code)
	}
}
