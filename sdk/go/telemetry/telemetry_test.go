package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

type echo struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
}

func (echo) Exercise(ctx context.Context, _ *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil, connect.NewError(connect.CodeInternal, errors.New("no span in the handler"))
	}
	return connect.NewResponse(&capabilityv1.ExerciseResponse{}), nil
}

// TestSpanCarriesTxn calls a server through a client, both with the
// interceptors: the server span carries the txn and is a child of the
// client span (one trace across the hop).
func TestSpanCarriesTxn(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel, err := telemetry.New(t.Context(), telemetry.Config{ServiceName: "test", TracerProvider: tp, TrustRemote: true})
	if err != nil {
		t.Fatal(err)
	}

	ring, _ := keys.NewRing()
	gw, _ := token.NewIssuer("gateway", ring)
	v, err := token.NewVerifier(token.Trust("gateway", ring, token.Accept(token.Transaction, "td")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	raw, claims, err := token.Issue(t.Context(), gw, token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: "usr_a", Audience: []string{"td"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(echo{},
		connect.WithInterceptors(authn.NewServerInterceptor(v)), tel.HandlerOption()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := capabilityv1connect.NewCapabilityServiceClient(srv.Client(), srv.URL,
		connect.WithInterceptors(authn.NewClientInterceptor()), tel.ClientOption())

	ctx := authn.ContextWithTransaction(t.Context(), raw, claims)
	if _, err := client.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{})); err != nil {
		t.Fatal(err)
	}

	var server, clientSpan sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			clientSpan = s
		}
	}
	if server == nil || clientSpan == nil {
		t.Fatalf("spans = %v; want a client and a server span", rec.Ended())
	}
	for _, s := range []sdktrace.ReadOnlySpan{server, clientSpan} {
		var txn string
		for _, a := range s.Attributes() {
			if a.Key == telemetry.TxnAttribute {
				txn = a.Value.AsString()
			}
			if a.Value.AsString() == raw {
				t.Fatalf("span %s records the token", s.Name())
			}
		}
		if txn != claims.Txn {
			t.Errorf("span %s (%v): txn = %q, want %q", s.Name(), s.SpanKind(), txn, claims.Txn)
		}
	}
	if server.SpanContext().TraceID() != clientSpan.SpanContext().TraceID() || server.Parent().SpanID() != clientSpan.SpanContext().SpanID() {
		t.Fatalf("server span is not the client span's child: server parent %v, client %v", server.Parent(), clientSpan.SpanContext())
	}
}

// TestEnvironment: exporting only when an endpoint is named.
func TestEnvironment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"endpoint", map[string]string{telemetry.EnvEndpoint: "http://127.0.0.1:4318"}, true},
		{"traces endpoint", map[string]string{telemetry.EnvTracesEndpoint: "http://127.0.0.1:4318/v1/traces"}, true},
		{"disabled", map[string]string{telemetry.EnvEndpoint: "http://127.0.0.1:4318", telemetry.EnvSDKDisabled: "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tel, err := telemetry.New(t.Context(), telemetry.Config{ServiceName: "test", Getenv: func(k string) string { return tc.env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tel.Shutdown(context.Background()) }()
			if tel.Exporting() != tc.want {
				t.Fatalf("Exporting = %v, want %v", tel.Exporting(), tc.want)
			}
			// Even the no-op provider passes a parent's trace context on.
			parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
			ctx, span := tel.TracerProvider().Tracer("t").Start(trace.ContextWithSpanContext(t.Context(), parent), "x")
			defer span.End()
			h := http.Header{}
			tel.Propagator().Inject(ctx, propagation.HeaderCarrier(h))
			if h.Get("Traceparent") == "" {
				t.Fatal("no traceparent injected")
			}
		})
	}
}
