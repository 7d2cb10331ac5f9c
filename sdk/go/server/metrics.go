package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// MetricsPath is where the mains serve Metrics.Handler.
const MetricsPath = "/metrics"

// Metric names.
const (
	// RequestsMetric counts RPCs by procedure and code ("ok" or a Connect
	// code such as "unauthenticated").
	RequestsMetric = "tokenrelay_rpc_requests_total"
	// DurationMetric is the histogram of RPC latency in seconds, by
	// procedure; a server stream counts until it ends.
	DurationMetric = "tokenrelay_rpc_duration_seconds"
	// RefusalsMetric counts tokens refused, by reason (see RefusalReason).
	RefusalsMetric = "tokenrelay_token_refusals_total"
)

// UnknownProcedure is the procedure label of a path that names no method
// linked into the binary: labels stay bounded whatever clients send.
const UnknownProcedure = "unknown"

// Metrics is a process's Prometheus registry with the RPC and token
// metrics, plus the Go runtime and process collectors. It is safe for
// concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refusals *prometheus.CounterVec
}

// NewMetrics returns a Metrics with a registry of its own (never the
// global one: tests build several).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsMetric, Help: "RPCs handled, by procedure and Connect code (ok when it succeeded).",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: DurationMetric, Help: "RPC latency in seconds, by procedure (a server stream until it ends).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"procedure"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RefusalsMetric, Help: "Tokens refused, by reason (the token package's sentinel error).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.refusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerSignatures()
	return m
}

// Registry returns the registry, to add a process's own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format; mount
// it at MetricsPath.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Observe records one RPC: procedure ("/pkg.Service/Method"; one not linked
// into the binary is recorded as UnknownProcedure), its outcome (nil, or an
// error whose connect.CodeOf is its code) and its duration; and, when err
// is a token refusal, its reason. The gateway calls it for every request;
// Interceptor calls it for every RPC that reaches it.
func (m *Metrics) Observe(procedure string, err error, d time.Duration) {
	procedure = knownProcedure(procedure)
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
		if reason := RefusalReason(err); reason != "" {
			m.refusals.WithLabelValues(reason).Inc()
		}
	}
	m.requests.WithLabelValues(procedure, code).Inc()
	m.duration.WithLabelValues(procedure).Observe(d.Seconds())
}

// HandlerOption installs Interceptor on Connect handlers.
func (m *Metrics) HandlerOption() connect.HandlerOption {
	return connect.WithInterceptors(m.Interceptor())
}

// Interceptor returns the server-side Connect interceptor that calls
// Observe for each RPC when its handler returns (for a server stream, when
// the stream ends). Client calls pass through unobserved.
//
// Install it with a service's Register options: it then runs inside the
// service's authentication interceptor, which Register installs first, so
// it sees the RPCs that carried a valid transaction token, and the token
// refusals of the handler itself (a confirmation token refused by
// PlaceOrder). Requests refused for their credential are counted where
// they are refused in practice: at the gateway.
func (m *Metrics) Interceptor() connect.Interceptor { return interceptor{m} }

type interceptor struct{ m *Metrics }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		res, err := next(ctx, req)
		i.m.Observe(req.Spec().Procedure, err, time.Since(start))
		return res, err
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.m.Observe(conn.Spec().Procedure, err, time.Since(start))
		return err
	}
}

// knownProcedure returns procedure when it names a method of a service
// linked into the binary, else UnknownProcedure.
func knownProcedure(procedure string) string {
	service, method, ok := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
	if !ok || !protoreflect.FullName(service).IsValid() || !protoreflect.Name(method).IsValid() {
		return UnknownProcedure
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return UnknownProcedure
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok || sd.Methods().ByName(protoreflect.Name(method)) == nil {
		return UnknownProcedure
	}
	return procedure
}

// refusalReasons maps each refusal sentinel to its reason label. The order
// matters only for errors wrapping several, which the token package never
// returns.
var refusalReasons = []struct {
	err    error
	reason string
}{
	{authn.ErrMissingToken, "missing"},
	{token.ErrTooLarge, "too_large"},
	{token.ErrMalformed, "malformed"},
	{token.ErrDuplicateName, "duplicate_name"},
	{token.ErrHeader, "header"},
	{token.ErrAlgorithm, "algorithm"},
	{token.ErrKeyID, "key_id"},
	{token.ErrType, "type"},
	{token.ErrIssuer, "issuer"},
	{token.ErrClaims, "claims"},
	{token.ErrExpired, "expired"},
	{token.ErrNotYetValid, "not_yet_valid"},
	{token.ErrLifetime, "lifetime"},
	{token.ErrAudience, "audience"},
	{token.ErrCapability, "capability"},
	{token.ErrSignature, "signature"},
	{token.ErrReplayed, "replayed"},
	{keys.ErrKeyNotFound, "unknown_key"},
	{keys.ErrUnavailable, "keys_unavailable"},
	{authn.ErrWorkloadNotAllowed, "workload_not_allowed"},
}

// RefusalReason returns the reason label of a token refusal: the token
// package's sentinel in snake case ("expired", "signature", "audience",
// "replayed", ...), "unknown_key" for a kid its issuer does not publish,
// "keys_unavailable" when the issuer's keys cannot be fetched, "missing"
// for no token at all; "" when err is no token refusal.
func RefusalReason(err error) string {
	for _, r := range refusalReasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ""
}
