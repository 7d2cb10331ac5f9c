// Package metrics is the Prometheus instrumentation every tokenrelay
// process shares: one [Registry] per process with the RPC metrics (a
// Connect interceptor counting requests by procedure and code, and a latency
// histogram), the token refusals by reason, the signatures made and checked,
// the process-level counters a binary adds (saga outcomes, JWKS fetches),
// and the Go runtime and process collectors, served at [Path].
//
// The rule: metrics observe, they never decide. Labels are bounded whatever
// clients send (procedures not linked into the binary are one label,
// refusal reasons are token.Reason's fixed labels), nothing here changes an
// RPC's outcome, and a Registry is never the global one. It imports no
// server or process plumbing: binaries mount Handler where they serve.
package metrics

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
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Path is where the binaries serve Registry.Handler.
const Path = "/metrics"

// Metric names.
const (
	// RequestsTotal counts RPCs by procedure and code ("ok" or a Connect
	// code such as "unauthenticated").
	RequestsTotal = "tokenrelay_rpc_requests_total"
	// DurationSeconds is the histogram of RPC latency in seconds, by
	// procedure; a server stream counts until it ends.
	DurationSeconds = "tokenrelay_rpc_duration_seconds"
	// RefusalsTotal counts tokens refused, by reason (see Observe).
	RefusalsTotal = "tokenrelay_token_refusals_total"
)

// UnknownProcedure is the procedure label of a path that names no method
// linked into the binary: labels stay bounded whatever clients send.
const UnknownProcedure = "unknown"

// Reasons of the refusals of a request's credential that are no token
// defect (package authn's sentinels).
const (
	reasonMissing            = "missing"
	reasonWorkloadNotAllowed = "workload_not_allowed"
	reasonRepeatedHeader     = "repeated_header"
	reasonWorkloadBinding    = "workload_binding"
)

// Registry is a process's Prometheus registry with the RPC and token
// metrics, plus the Go runtime and process collectors. It is safe for
// concurrent use.
type Registry struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refusals *prometheus.CounterVec
}

// New returns a Registry with a prometheus.Registry of its own (never the
// global one: tests build several).
func New() *Registry {
	m := &Registry{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsTotal, Help: "RPCs handled, by procedure and Connect code (ok when it succeeded).",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: DurationSeconds, Help: "RPC latency in seconds, by procedure (a server stream until it ends).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"procedure"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RefusalsTotal, Help: "Tokens refused, by reason (the token package's sentinel error).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.refusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerSignatures()
	return m
}

// Prometheus returns the underlying registry, to add a process's own
// collectors.
func (m *Registry) Prometheus() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format; mount
// it at Path.
func (m *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Mux returns a new ServeMux with Handler at "GET "+Path, the base mux of
// a service binary.
func (m *Registry) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, m.Handler())
	return mux
}

// Observe records one RPC: procedure ("/pkg.Service/Method"; one not linked
// into the binary is recorded as UnknownProcedure), its outcome (nil, or an
// error whose connect.CodeOf is its code) and its duration; and, when err
// is a token refusal, its reason: token.Reason ("expired", "signature",
// "unknown_key", "keys_unavailable", ...), or, for authn's sentinels,
// "missing" for no token at all, "repeated_header" for a token header sent
// twice, "workload_binding" for a workload token made for another call and
// "workload_not_allowed" for a workload the procedure does not admit. The gateway calls it for every request; Interceptor
// calls it for every RPC that reaches it.
func (m *Registry) Observe(procedure string, err error, d time.Duration) {
	procedure = knownProcedure(procedure)
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
		if _, counted := errors.AsType[*countedRefusal](err); !counted {
			m.countRefusal(err)
		}
	}
	m.requests.WithLabelValues(procedure, code).Inc()
	m.duration.WithLabelValues(procedure).Observe(d.Seconds())
}

// Refused counts err as a token refusal, by the reason Observe gives it,
// when it is one, and returns it marked as counted: Observe, called with it
// later (by Interceptor), then counts the RPC and not the refusal again. A
// handler calls it on the refusals it answers itself, so that they are
// counted whether or not its RPCs pass through Interceptor: the embedded
// process observes every RPC at its gateway, by code alone, and would
// otherwise count none of the confirmation tokens OrderProcessing's
// PlaceOrder refuses. The marked error is err for errors.Is, errors.As and
// connect.CodeOf; Refused(nil) is nil.
func (m *Registry) Refused(err error) error {
	if err == nil {
		return nil
	}
	if _, counted := errors.AsType[*countedRefusal](err); counted {
		return err
	}
	m.countRefusal(err)
	return &countedRefusal{err}
}

// countedRefusal is an error Refused has counted.
type countedRefusal struct{ err error }

func (c *countedRefusal) Error() string { return c.err.Error() }
func (c *countedRefusal) Unwrap() error { return c.err }

// countRefusal counts err's refusal reason, if it has one.
func (m *Registry) countRefusal(err error) {
	if reason := refusalReason(err); reason != "" {
		m.refusals.WithLabelValues(reason).Inc()
	}
}

// refusalReason is the reason label of a refusal, "" for an error that is
// none.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, authn.ErrMissingToken):
		return reasonMissing
	case errors.Is(err, authn.ErrRepeatedHeader):
		return reasonRepeatedHeader
	case errors.Is(err, authn.ErrWorkloadBinding):
		return reasonWorkloadBinding
	case token.Reason(err) != "":
		return token.Reason(err)
	case errors.Is(err, authn.ErrWorkloadNotAllowed):
		return reasonWorkloadNotAllowed
	}
	return ""
}

// HandlerOption installs Interceptor on Connect handlers.
func (m *Registry) HandlerOption() connect.HandlerOption {
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
// PlaceOrder), but not a refusal the handler counted itself (Refused).
// Requests refused for their credential are counted where they are refused
// in practice: at the gateway.
func (m *Registry) Interceptor() connect.Interceptor { return interceptor{m} }

type interceptor struct{ m *Registry }

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
