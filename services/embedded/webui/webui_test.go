package webui_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tokenrelay/tokenrelay/services/embedded/webui"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><title>app</title>")},
		"assets/index-abc.js": {Data: []byte("console.log(1)")},
		"favicon.svg":         {Data: []byte("<svg/>")},
		"assets/sub/.keep":    {Data: nil},
	}
	h, err := webui.Handler(fsys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string
		wantCache          string
	}{
		{"root is the app", http.MethodGet, "/", 200, "<title>app</title>", "no-cache"},
		{"index.html is the app", http.MethodGet, "/index.html", 200, "<title>app</title>", "no-cache"},
		{"an app route is the app", http.MethodGet, "/orders", 200, "<title>app</title>", "no-cache"},
		{"a nested app route is the app", http.MethodGet, "/orders/ord_1", 200, "<title>app</title>", "no-cache"},
		{"an asset is served and cached", http.MethodGet, "/assets/index-abc.js", 200, "console.log(1)", "public, max-age=31536000, immutable"},
		{"a missing asset is 404", http.MethodGet, "/assets/index-old.js", 404, "", ""},
		{"a missing file is 404", http.MethodGet, "/robots.txt", 404, "", ""},
		{"another file is served", http.MethodGet, "/favicon.svg", 200, "<svg/>", "no-cache"},
		{"a directory is the app", http.MethodGet, "/assets/sub", 404, "", ""},
		{"no escape above the root", http.MethodGet, "/../../etc/passwd", 200, "<title>app</title>", "no-cache"},
		{"HEAD works", http.MethodHead, "/", 200, "", "no-cache"},
		{"POST is refused", http.MethodPost, "/", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", rec.Body.String(), tt.wantBody)
			}
			if tt.wantCache != "" && rec.Header().Get("Cache-Control") != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", rec.Header().Get("Cache-Control"), tt.wantCache)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); tt.wantStatus != 405 && got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
		})
	}
}

func TestHandlerAppHasCSP(t *testing.T) {
	t.Parallel()
	h, err := webui.Handler(fstest.MapFS{"index.html": {Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/checkout", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestHandlerWithoutBuild(t *testing.T) {
	t.Parallel()
	if _, err := webui.Handler(fstest.MapFS{}); !errors.Is(err, webui.ErrNoIndex) {
		t.Fatalf("err = %v, want ErrNoIndex", err)
	}
}
