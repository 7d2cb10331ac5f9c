package embedded_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/embedded/webui"
)

// TestWeb checks that Config.Web serves every path of the app (assets and
// the app's own routes) while the gateway's RPCs, /healthz and the JWKS
// keep theirs. It uses an in-memory build, so it needs no npm build.
func TestWeb(t *testing.T) {
	t.Parallel()
	web, err := webui.Handler(fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><title>checkout</title>")},
		"assets/index-abc.js": {Data: []byte("export {}")},
	})
	if err != nil {
		t.Fatal(err)
	}
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: false, Web: web,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, sys) })
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{http.MethodGet, "/", 200, "<title>checkout</title>"},
		{http.MethodGet, "/orders", 200, "<title>checkout</title>"},
		{http.MethodGet, "/assets/index-abc.js", 200, "export {}"},
		{http.MethodGet, "/assets/missing.js", 404, ""},
		{http.MethodGet, "/healthz", 200, "ok"},
		{http.MethodGet, "/.well-known/jwks/gateway.json", 200, `"keys"`},
		{http.MethodPost, "/", 405, ""},
		{http.MethodPost, "/tokenrelay.orderprocessing.v1.OrderProcessingService/ListProducts", 401, "unauthenticated"},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), tt.method, sys.URL()+tt.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, res.StatusCode, body, tt.wantStatus, tt.wantBody)
		}
	}
}
