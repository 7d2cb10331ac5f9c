package gateway

import (
	"net/http"
	"slices"
	"strings"
)

// CORS for the Connect, gRPC-Web and tokenrelay headers.
var (
	corsAllowedMethods = "GET, POST"
	// Request headers a browser client may send. Txn-Token and
	// Workload-Token are not among them: clients never supply those.
	corsAllowedHeaders = strings.Join([]string{
		"Authorization", "Content-Type", "Content-Encoding", "Accept-Encoding",
		"Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Content-Encoding", "Connect-Accept-Encoding",
		"Grpc-Timeout", "Grpc-Encoding", "Grpc-Accept-Encoding", "X-Grpc-Web", "X-User-Agent",
		"Idempotency-Key", "Checkout-Token", "Traceparent", "Tracestate", "Baggage",
	}, ", ")
	// Response headers a browser client may read.
	corsExposedHeaders = strings.Join([]string{
		"Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Content-Encoding", "Connect-Accept-Encoding",
		"Content-Encoding", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Grpc-Encoding", "Grpc-Accept-Encoding",
		"Checkout-Token", "Idempotency-Key", "WWW-Authenticate", "Retry-After",
	}, ", ")
)

// corsMaxAge is how long a browser may cache a preflight, in seconds.
const corsMaxAge = "7200"

type cors struct {
	any     bool
	origins []string
}

func newCORS(origins []string) cors {
	return cors{any: slices.Contains(origins, "*"), origins: origins}
}

func (c cors) allowed(origin string) bool {
	return origin != "" && (c.any || slices.Contains(c.origins, origin))
}

// handle adds the CORS response headers for an allowed origin and answers
// preflights; it reports whether the request was answered. A disallowed
// origin gets no CORS header at all, so the browser refuses the response.
// Bearer tokens travel in a header, not a cookie, so credentials are never
// allowed.
func (c cors) handle(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(c.origins) > 0 {
		w.Header().Add("Vary", "Origin")
	}
	ok := c.allowed(origin)
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		w.Header().Add("Vary", "Access-Control-Request-Method")
		w.Header().Add("Vary", "Access-Control-Request-Headers")
		if !ok {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", corsAllowedMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if ok {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Expose-Headers", corsExposedHeaders)
	}
	return false
}
