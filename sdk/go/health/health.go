// Package health serves the health endpoint every tokenrelay server
// offers: GET /healthz answers 200 "ok" when every check passes within its
// deadline, and 503 naming the failed checks (never their errors, which may
// carry internals) otherwise. Load balancers and orchestrators poll it.
package health

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Path is where servers mount the handler.
const Path = "/healthz"

// Timeout bounds all checks of one request.
const Timeout = 2 * time.Second

// Check reports whether one dependency is usable, such as a database ping.
type Check func(ctx context.Context) error

// Handler returns the health handler for the named checks.
func Handler(checks map[string]Check) http.Handler {
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	slices.Sort(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), Timeout)
		defer cancel()
		var failed []string
		for _, n := range names {
			if err := checks[n](ctx); err != nil {
				failed = append(failed, n)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("unhealthy: " + strings.Join(failed, ", ") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
