package authn_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
)

// watchService and watchProcedure are a server-streaming procedure that
// requires a workload token, next to CapabilityService.
const (
	watchService   = "tokenrelay.test.v1.WatchService"
	watchProcedure = "/" + watchService + "/Watch"
)

// captured records the last Workload-Token a client sent.
type captured struct {
	mu   sync.Mutex
	last string
}

func (c *captured) set(h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = h.Get(authn.WorkloadHeader)
}

func (c *captured) get() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// interceptor records the header as it leaves, inside authn's client
// interceptor (which must come first in connect.WithInterceptors).
func (c *captured) interceptor() connect.Interceptor { return capture{c} }

type capture struct{ c *captured }

func (p capture) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		p.c.set(req.Header())
		return next(ctx, req)
	}
}

func (p capture) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		return captureConn{next(ctx, spec), p.c}
	}
}

func (p capture) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// captureConn reads the headers when the first message goes out: authn's
// interceptor sets them after this conn is made.
type captureConn struct {
	connect.StreamingClientConn
	c *captured
}

func (s captureConn) Send(m any) error {
	s.c.set(s.RequestHeader())
	return s.StreamingClientConn.Send(m)
}

// bindingServer serves CapabilityService (Exercise answers, Compensate is
// unimplemented: reaching it means authentication passed) and the Watch
// stream over HTTP/2 with TLS, both requiring a workload token of
// OrderProcessing.
func bindingServer(t *testing.T, w *world) (string, *http.Client) {
	t.Helper()
	server := connect.WithInterceptors(authn.NewServerInterceptor(w.txnVerifier,
		authn.RequireWorkload(capabilityv1connect.CapabilityServiceName, w.workVerifier, "order-processing"),
		authn.RequireWorkload(watchService, w.workVerifier, "order-processing")))
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(&hop{name: "points", log: slog.New(slog.DiscardHandler)}, server))
	mux.Handle(watchProcedure, connect.NewServerStreamHandler(watchProcedure,
		func(_ context.Context, _ *connect.Request[capabilityv1.ExerciseRequest], s *connect.ServerStream[capabilityv1.ExerciseResponse]) error {
			return s.Send(&capabilityv1.ExerciseResponse{})
		}, server))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, srv.Client()
}

var protocols = map[string][]connect.ClientOption{
	"connect":      nil,
	"connect json": {connect.WithProtoJSON()},
	"grpc":         {connect.WithGRPC()},
	"grpc-web":     {connect.WithGRPCWeb()},
}

// TestWorkloadTokenBoundToCall: a workload token captured from one call
// cannot exercise another token, exercise for another order, or
// compensate; only the identical call can be repeated, which Exercise's
// idempotency per (jti, order) makes harmless. Over every protocol, since
// the digest is of the message, not of its encoding.
func TestWorkloadTokenBoundToCall(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	url, hc := bindingServer(t, w)
	txn, claims := w.txn(t, "usr_alice", "shop")
	ctx := authn.ContextWithTransaction(t.Context(), txn, claims)
	for name, opts := range protocols {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var seen captured
			client := capabilityv1connect.NewCapabilityServiceClient(hc, url, append(opts[:len(opts):len(opts)],
				connect.WithInterceptors(authn.NewClientInterceptor(authn.WithWorkload(w.orders, "points")), seen.interceptor()))...)
			exercise := &capabilityv1.ExerciseRequest{ConfirmationToken: "conf-a", OrderId: "ord_a", IdempotencyKey: "ord_a:1"}
			if _, err := client.Exercise(ctx, connect.NewRequest(exercise)); err != nil {
				t.Fatalf("bound call: %v", err)
			}
			stolen := seen.get()
			if stolen == "" {
				t.Fatal("no workload token captured")
			}
			// Another procedure through the same client binds its own.
			if _, err := client.Compensate(ctx, connect.NewRequest(&capabilityv1.CompensateRequest{ConfirmationToken: "conf-a", OrderId: "ord_a", Reason: "r"})); connect.CodeOf(err) != connect.CodeUnimplemented {
				t.Fatalf("bound Compensate: %v, want it to reach the handler", err)
			}

			replay := capabilityv1connect.NewCapabilityServiceClient(hc, url, opts...)
			headers := func(h http.Header) {
				h.Set(authn.TxnHeader, txn)
				h.Set(authn.WorkloadHeader, stolen)
			}
			for _, tc := range []struct {
				name string
				call func() error
				want connect.Code // 0: accepted
			}{
				{"the identical call again", func() error {
					req := connect.NewRequest(exercise)
					headers(req.Header())
					_, err := replay.Exercise(t.Context(), req)
					return err
				}, 0},
				{"another order", func() error {
					req := connect.NewRequest(&capabilityv1.ExerciseRequest{ConfirmationToken: "conf-a", OrderId: "ord_b", IdempotencyKey: "ord_a:1"})
					headers(req.Header())
					_, err := replay.Exercise(t.Context(), req)
					return err
				}, connect.CodeUnauthenticated},
				{"another confirmation token", func() error {
					req := connect.NewRequest(&capabilityv1.ExerciseRequest{ConfirmationToken: "conf-b", OrderId: "ord_a", IdempotencyKey: "ord_a:1"})
					headers(req.Header())
					_, err := replay.Exercise(t.Context(), req)
					return err
				}, connect.CodeUnauthenticated},
				{"another idempotency key", func() error {
					req := connect.NewRequest(&capabilityv1.ExerciseRequest{ConfirmationToken: "conf-a", OrderId: "ord_a", IdempotencyKey: "ord_a:2"})
					headers(req.Header())
					_, err := replay.Exercise(t.Context(), req)
					return err
				}, connect.CodeUnauthenticated},
				{"compensate", func() error {
					req := connect.NewRequest(&capabilityv1.CompensateRequest{ConfirmationToken: "conf-a", OrderId: "ord_a", Reason: "r"})
					headers(req.Header())
					_, err := replay.Compensate(t.Context(), req)
					return err
				}, connect.CodeUnauthenticated},
				{"the stream", func() error {
					c := connect.NewClient[capabilityv1.ExerciseRequest, capabilityv1.ExerciseResponse](hc, url+watchProcedure, opts...)
					req := connect.NewRequest(exercise)
					headers(req.Header())
					return drain(c.CallServerStream(t.Context(), req))
				}, connect.CodeUnauthenticated},
			} {
				err := tc.call()
				if (err == nil) != (tc.want == 0) || err != nil && connect.CodeOf(err) != tc.want {
					t.Errorf("%s: %v, want code %v", tc.name, err, tc.want)
				}
				if err != nil && strings.Contains(err.Error(), stolen) {
					t.Errorf("%s: the error echoes the token", tc.name)
				}
			}
		})
	}
}

// TestWorkloadTokenBoundToStream: a stream's token binds its procedure
// only (its messages are not known when the headers go out), so it is
// refused on any unary call, and a unary call's token on the stream.
func TestWorkloadTokenBoundToStream(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	url, hc := bindingServer(t, w)
	txn, claims := w.txn(t, "usr_alice", "shop")
	ctx := authn.ContextWithTransaction(t.Context(), txn, claims)
	var seen captured
	watch := connect.NewClient[capabilityv1.ExerciseRequest, capabilityv1.ExerciseResponse](hc, url+watchProcedure,
		connect.WithInterceptors(authn.NewClientInterceptor(authn.WithWorkload(w.orders, "points")), seen.interceptor()))
	msg := &capabilityv1.ExerciseRequest{ConfirmationToken: "conf-a", OrderId: "ord_a"}
	if err := drain(watch.CallServerStream(ctx, connect.NewRequest(msg))); err != nil {
		t.Fatalf("bound stream: %v", err)
	}
	stolen := seen.get()
	plain := connect.NewClient[capabilityv1.ExerciseRequest, capabilityv1.ExerciseResponse](hc, url+watchProcedure)
	req := connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "ord_b"})
	req.Header().Set(authn.TxnHeader, txn)
	req.Header().Set(authn.WorkloadHeader, stolen)
	if err := drain(plain.CallServerStream(t.Context(), req)); err != nil {
		t.Fatalf("the stream's token on the same stream: %v (the procedure alone is bound)", err)
	}
	ureq := connect.NewRequest(msg)
	ureq.Header().Set(authn.TxnHeader, txn)
	ureq.Header().Set(authn.WorkloadHeader, stolen)
	if _, err := capabilityv1connect.NewCapabilityServiceClient(hc, url).Exercise(t.Context(), ureq); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("the stream's token on Exercise: %v, want unauthenticated", err)
	}
}

// TestRepeatedTokenHeaders: a call carrying Txn-Token or Workload-Token
// twice is refused, whichever copy is good: which token authenticates a
// call must not depend on which copy a reader takes.
func TestRepeatedTokenHeaders(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	url, hc := bindingServer(t, w)
	good, claims := w.txn(t, "usr_alice", "shop")
	other, _ := w.txn(t, "usr_admin", "shop admin")
	msg := &capabilityv1.ExerciseRequest{ConfirmationToken: "conf-a", OrderId: "ord_a"}
	// A good workload token for exactly this call.
	var seen captured
	signer := capabilityv1connect.NewCapabilityServiceClient(hc, url,
		connect.WithInterceptors(authn.NewClientInterceptor(authn.WithWorkload(w.orders, "points")), seen.interceptor()))
	if _, err := signer.Exercise(authn.ContextWithTransaction(t.Context(), good, claims), connect.NewRequest(msg)); err != nil {
		t.Fatal(err)
	}
	wl := seen.get()
	for _, tc := range []struct {
		name     string
		txn, wls []string
		want     connect.Code // 0: accepted
	}{
		{"one of each", []string{good}, []string{wl}, 0},
		{"two good transaction tokens", []string{good, other}, []string{wl}, connect.CodeUnauthenticated},
		{"the same transaction token twice", []string{good, good}, []string{wl}, connect.CodeUnauthenticated},
		{"good then bad transaction token", []string{good, "bad"}, []string{wl}, connect.CodeUnauthenticated},
		{"bad then good transaction token", []string{"bad", good}, []string{wl}, connect.CodeUnauthenticated},
		{"the same workload token twice", []string{good}, []string{wl, wl}, connect.CodeUnauthenticated},
		{"good then bad workload token", []string{good}, []string{wl, "bad"}, connect.CodeUnauthenticated},
	} {
		for name, opts := range protocols {
			req := connect.NewRequest(msg)
			for _, v := range tc.txn {
				req.Header().Add(authn.TxnHeader, v)
			}
			for _, v := range tc.wls {
				req.Header().Add(authn.WorkloadHeader, v)
			}
			_, err := capabilityv1connect.NewCapabilityServiceClient(hc, url, opts...).Exercise(t.Context(), req)
			if (err == nil) != (tc.want == 0) || err != nil && connect.CodeOf(err) != tc.want {
				t.Errorf("%s over %s: %v, want code %v", tc.name, name, err, tc.want)
			}
		}
	}
	// On a procedure open to anonymous callers too.
	anon := serve(t, &hop{name: "x", log: slog.New(slog.DiscardHandler)}, connect.WithInterceptors(
		authn.NewServerInterceptor(w.txnVerifier, authn.AllowAnonymous(capabilityv1connect.CapabilityServiceCompensateProcedure))))
	req := connect.NewRequest(&capabilityv1.CompensateRequest{})
	req.Header().Add(authn.TxnHeader, good)
	req.Header().Add(authn.TxnHeader, other)
	if _, err := capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, anon).Compensate(t.Context(), req); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("anonymous procedure, two transaction tokens: %v, want unauthenticated", err)
	}
}

// drain reads a server stream to its end.
func drain[T any](s *connect.ServerStreamForClient[T], err error) error {
	if err != nil {
		return err
	}
	defer s.Close()
	for s.Receive() {
	}
	return s.Err()
}
