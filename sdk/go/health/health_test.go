package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	bad := func(context.Context) error { return errors.New("dial tcp 10.0.0.9:5432: refused") }
	for _, tc := range []struct {
		name   string
		checks map[string]Check
		code   int
		body   string
	}{
		{"no checks", nil, 200, "ok\n"},
		{"all pass", map[string]Check{"db": ok, "keys": ok}, 200, "ok\n"},
		{"one fails", map[string]Check{"db": bad, "keys": ok}, 503, "unhealthy: db\n"},
		{"deadline", map[string]Check{"slow": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}, 503, "unhealthy: slow\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Handler(tc.checks).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
			if rec.Code != tc.code || rec.Body.String() != tc.body {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body, tc.code, tc.body)
			}
			if strings.Contains(rec.Body.String(), "10.0.0.9") {
				t.Fatal("the body leaks a check's error")
			}
		})
	}
}
