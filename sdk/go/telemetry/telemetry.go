// Package telemetry sets up OpenTelemetry tracing for a tokenrelay process
// and the Connect interceptors that make every RPC a span carrying its
// transaction id.
//
// Exporting is opt-in through the standard environment: New installs an
// SDK tracer provider exporting over OTLP/HTTP only when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (the exporter reads the rest: headers, timeout, compression, TLS), and
// OTEL_SDK_DISABLED is not "true". Otherwise the provider is a no-op: spans
// cost nothing and are not recorded, but trace context still flows, so a
// process without an endpoint passes traceparent on unchanged.
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the resource.
//
// Propagation is W3C Trace Context plus W3C Baggage.
//
// On Connect handlers and clients, install the interceptors after the
// authentication interceptor, which puts the transaction in the context:
//
//	tel, _ := telemetry.Setup(ctx, telemetry.Config{ServiceName: "points"})
//	defer tel.Shutdown(context.Background())
//	svc.Register(mux, tel.HandlerOption())
//
// The first interceptor (otelconnect) starts the span; the second sets the
// attribute "txn" on it from authn.TxnFrom. Only the txn is recorded,
// never a token.
package telemetry

import (
	"context"
	"errors"
	"os"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// Environment variables New reads (the OpenTelemetry standard names).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
)

// TxnAttribute is the span attribute holding the transaction id.
const TxnAttribute = "txn"

// Config configures New.
type Config struct {
	// ServiceName is the resource's service.name (OTEL_SERVICE_NAME wins).
	ServiceName string
	// TracerProvider, when set, is used as is and the environment is not
	// read: tests pass an SDK provider with a span recorder.
	TracerProvider trace.TracerProvider
	// TrustRemote makes server spans children of the caller's span. Set it
	// on services behind the gateway, whose callers are tokenrelay
	// services; leave it off at the public edge, where an incoming
	// traceparent is only linked.
	TrustRemote bool
	// Getenv reads the environment. Default os.Getenv.
	Getenv func(string) string
}

// Telemetry is a process's tracing setup.
type Telemetry struct {
	provider    trace.TracerProvider
	propagator  propagation.TextMapPropagator
	interceptor *otelconnect.Interceptor
	shutdown    func(context.Context) error
	exporting   bool
}

// New returns the tracing setup cfg and the environment describe, without
// touching the OpenTelemetry globals (Setup does).
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	t := &Telemetry{
		provider:   cfg.TracerProvider,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown:   func(context.Context) error { return nil },
	}
	switch {
	case t.provider != nil:
	case strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true"),
		getenv(EnvEndpoint) == "" && getenv(EnvTracesEndpoint) == "":
		t.provider = noop.NewTracerProvider()
	default:
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		res, err := resource.New(ctx,
			resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
			resource.WithFromEnv(), resource.WithTelemetrySDK())
		if err != nil && !errors.Is(err, resource.ErrPartialResource) {
			return nil, err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.provider, t.shutdown, t.exporting = tp, tp.Shutdown, true
	}
	opts := []otelconnect.Option{
		otelconnect.WithTracerProvider(t.provider),
		otelconnect.WithPropagator(t.propagator),
		otelconnect.WithoutMetrics(),
	}
	if cfg.TrustRemote {
		opts = append(opts, otelconnect.WithTrustRemote())
	}
	ic, err := otelconnect.NewInterceptor(opts...)
	if err != nil {
		return nil, err
	}
	t.interceptor = ic
	return t, nil
}

// Setup is New followed by installing the provider and propagator as the
// OpenTelemetry globals, for libraries that use them.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	t, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(t.provider)
	otel.SetTextMapPropagator(t.propagator)
	return t, nil
}

// Exporting reports whether spans are exported (an endpoint was
// configured).
func (t *Telemetry) Exporting() bool { return t.exporting }

// TracerProvider returns the provider: an SDK provider when exporting, a
// no-op one otherwise.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.provider }

// Propagator returns the W3C Trace Context and Baggage propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// Interceptors returns the tracing interceptor followed by the txn
// interceptor, for handlers and clients alike.
func (t *Telemetry) Interceptors() []connect.Interceptor {
	return []connect.Interceptor{t.interceptor, TxnInterceptor()}
}

// HandlerOption installs Interceptors on a handler; put it after the
// authentication interceptor.
func (t *Telemetry) HandlerOption() connect.HandlerOption {
	return connect.WithInterceptors(t.Interceptors()...)
}

// ClientOption installs Interceptors on a client: client spans, the
// traceparent header, and the txn attribute.
func (t *Telemetry) ClientOption() connect.ClientOption {
	return connect.WithInterceptors(t.Interceptors()...)
}

// Shutdown flushes and stops the exporter; a no-op without one.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// TraceParent returns the span context of ctx as a W3C traceparent, or ""
// when it holds no valid one: for work that outlives its request, to link
// its spans to the request's later (Link).
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

// Link returns a span link to the span a TraceParent names, and false when
// traceparent is empty or malformed.
func Link(traceparent string) (trace.Link, bool) {
	if traceparent == "" {
		return trace.Link{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	return trace.Link{SpanContext: sc}, sc.IsValid()
}

// TxnInterceptor returns an interceptor that sets the attribute "txn" on
// the current span from the transaction in the context. Place it after the
// authentication interceptor and the tracing interceptor.
func TxnInterceptor() connect.Interceptor { return txnInterceptor{} }

type txnInterceptor struct{}

func annotate(ctx context.Context) {
	if txn := authn.TxnFrom(ctx); txn != "" {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String(TxnAttribute, txn))
	}
}

func (txnInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		annotate(ctx)
		return next(ctx, req)
	}
}

func (txnInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		annotate(ctx)
		return next(ctx, spec)
	}
}

func (txnInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		annotate(ctx)
		return next(ctx, conn)
	}
}
