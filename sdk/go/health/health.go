// Package health serves the probes every tokenrelay server offers, apart:
//
//   - liveness, GET /livez ([LivePath], [Live]): 200 "ok" whenever the
//     process answers HTTP at all. It checks no dependency, so that an
//     orchestrator restarts a process only when the process itself is
//     stuck, never because its database blinked (a restart would not bring
//     the database back, and it would restart every replica at once);
//   - readiness, GET /readyz ([ReadyPath], [Handler]): 200 "ok" when every
//     check passes within [Timeout] (the database reachable; behind the
//     gateway, the gateway's key set loaded once, [GatewayKeys]; the
//     embedded server's demo data seeded), 503 naming the failed checks
//     otherwise, never their errors, which may carry internals. Load
//     balancers and orchestrators route traffic only to a ready process;
//   - GET /healthz ([Path]): readiness too, kept for the probes and scripts
//     that used it before the two were apart.
//
// A process's signing keys are loaded before it listens, so a process that
// answers has them. The keys of its peers (OrderProcessing's at the
// domains, the domains' at OrderProcessing, Identity's at the gateway) are
// not a readiness check: they are fetched on first use and refreshed in the
// background, and making readiness wait for them would make replicas wait
// for each other at start (a peer's JWKS is served by a peer that would not
// be ready either: OrderProcessing and the domains each verify the other's
// tokens).
//
// The gateway's key set is the exception, [GatewayKeys]: every request
// behind the gateway carries its transaction token, so a process without
// its keys can only answer Unavailable, yet it would be routed requests as
// soon as its database answered. A jwks.Cache whose first fetch failed (the
// gateway not listening yet) even refuses lookups for its retry backoff,
// so a replica reported ready answered its first requests 503. The check
// passes once the key set has been loaded (jwks.Cache.Loaded; each probe
// tries a fetch until then, whatever the backoff) and stays passing after,
// whatever the gateway does: stale keys are the cache's concern, and
// readiness must not flap with a peer. It forms no cycle because the
// gateway is the root: its own readiness waits for no peer's keys, only for
// the discovery documents of the OpenID Connect providers it trusts by
// discovery, which no process waiting for the gateway serves, unless
// Identity is trusted by discovery (-issuer ISS alone) at an address that
// routes to ready processes only; trust it by JWKS URL (-issuer
// ISS=JWKS_URL), as the deployments do. So start the gateway first; the
// others become ready once it serves. Keys in process (the embedded server)
// need no check.
//
// Services mount readiness at [Path]; [Probes] adds /livez and /readyz in
// front of any handler that does, which is how every process serves all
// three (process.Serve applies it); [Mount] mounts all three on a mux.
package health

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Paths of the probes.
const (
	// LivePath is liveness: the process answers, no dependency checked.
	LivePath = "/livez"
	// ReadyPath is readiness: every check passes.
	ReadyPath = "/readyz"
	// Path is where services mount readiness ([Handler]); it answers as
	// ReadyPath does, for compatibility.
	Path = "/healthz"
)

// GatewayKeys names the readiness check of a process that verifies the
// gateway's transaction tokens with keys fetched by URL: the gateway's key
// set has been loaded at least once (capability.Peer.Loaded).
const GatewayKeys = "gateway-keys"

// Timeout bounds all checks of one request.
const Timeout = 2 * time.Second

// Check reports whether one dependency is usable, such as a database ping.
type Check func(ctx context.Context) error

// Handler returns the readiness handler for the named checks.
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
		if len(failed) > 0 {
			answer(w, http.StatusServiceUnavailable, "unhealthy: "+strings.Join(failed, ", ")+"\n")
			return
		}
		answer(w, http.StatusOK, "ok\n")
	})
}

// Live returns the liveness handler: 200 "ok", always.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w, http.StatusOK, "ok\n") })
}

func answer(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// Mount mounts liveness at LivePath, and readiness over checks at
// ReadyPath and Path, on mux (GET, and so HEAD).
func Mount(mux *http.ServeMux, checks map[string]Check) {
	ready := Handler(checks)
	mux.Handle("GET "+LivePath, Live())
	mux.Handle("GET "+ReadyPath, ready)
	mux.Handle("GET "+Path, ready)
}

// Probes returns h with liveness and readiness in front of it: GET or HEAD
// LivePath is answered by [Live] without reaching h; GET or HEAD ReadyPath
// is served by h as if it were Path, where every tokenrelay service mounts
// its readiness [Handler]. Every other request goes to h unchanged.
func Probes(h http.Handler) http.Handler {
	live := Live()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case LivePath:
			live.ServeHTTP(w, r)
		case ReadyPath:
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = Path, ""
			r2.RequestURI = Path
			h.ServeHTTP(w, r2)
		default:
			h.ServeHTTP(w, r)
		}
	})
}
