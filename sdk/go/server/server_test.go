package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// capability answers Exercise with the error its request's order id names.
type capability struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
}

func (capability) Exercise(_ context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	switch req.Msg.GetOrderId() {
	case "expired":
		return nil, token.ConnectError(fmt.Errorf("confirmation token: %w", token.ErrExpired), token.AsArgument())
	case "replayed":
		return nil, token.ConnectError(token.ErrReplayed)
	case "slow":
		time.Sleep(300 * time.Millisecond)
	}
	return connect.NewResponse(&capabilityv1.ExerciseResponse{}), nil
}

// h2cClient speaks HTTP/2 with prior knowledge, as gRPC peers do.
func h2cClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: t}
}

// start serves a capability service with metrics and reflection through
// Run and returns its base URL, the metrics, and a stop function that
// returns Run's result.
func start(t *testing.T, tasks ...server.Task) (string, *server.Metrics, func() error) {
	t.Helper()
	m := server.NewMetrics()
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(capability{}, m.HandlerOption()))
	server.MountReflection(mux, []string{capabilityv1connect.CapabilityServiceName}, m.HandlerOption())
	mux.Handle(server.MetricsPath, m.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(mux, server.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, srv, ln, 2*time.Second, tasks...) }()
	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), m, stop
}

func TestNewSettings(t *testing.T) {
	t.Parallel()
	srv := server.New(http.NotFoundHandler(), server.WithMaxHeaderBytes(1234))
	if srv.ReadHeaderTimeout != server.DefaultReadHeaderTimeout || srv.MaxHeaderBytes != 1234 ||
		!srv.Protocols.UnencryptedHTTP2() || !srv.Protocols.HTTP1() {
		t.Fatalf("server settings: header timeout %v, max header %d, protocols %v", srv.ReadHeaderTimeout, srv.MaxHeaderBytes, srv.Protocols)
	}
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Fatal("a read or write timeout would cut server streams")
	}
	if server.New(http.NotFoundHandler()).MaxHeaderBytes != server.DefaultMaxHeaderBytes {
		t.Fatal("default MaxHeaderBytes not set")
	}
}

func TestRPCOverGRPCAndConnect(t *testing.T) {
	t.Parallel()
	base, m, _ := start(t)
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		c := capabilityv1connect.NewCapabilityServiceClient(h2cClient(), base, opts...)
		ctx := context.Background()
		if _, err := c.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "ok"})); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err := c.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "expired"}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("%s: expired: %v", name, err)
		}
		_, err = c.Compensate(ctx, connect.NewRequest(&capabilityv1.CompensateRequest{}))
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Fatalf("%s: compensate: %v", name, err)
		}
	}
	_, err := capabilityv1connect.NewCapabilityServiceClient(h2cClient(), base).Exercise(context.Background(),
		connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "replayed"}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("replayed: %v", err)
	}
	// Unknown procedures stay one label, whatever the path.
	m.Observe("/tokenrelay.capability.v1.CapabilityService/NoSuchMethod", nil, time.Millisecond)
	m.Observe("/evil/"+strings.Repeat("x", 10), nil, time.Millisecond)

	res, err := http.Get(base + server.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	for _, want := range []string{
		`tokenrelay_rpc_requests_total{code="ok",procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 2`,
		`tokenrelay_rpc_requests_total{code="failed_precondition",procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 2`,
		`tokenrelay_rpc_requests_total{code="unimplemented",procedure="/tokenrelay.capability.v1.CapabilityService/Compensate"} 2`,
		`tokenrelay_rpc_requests_total{code="ok",procedure="unknown"} 2`,
		`tokenrelay_rpc_duration_seconds_count{procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 5`,
		`tokenrelay_token_refusals_total{reason="expired"} 2`,
		`tokenrelay_token_refusals_total{reason="replayed"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(string(body))
	}
}

func TestReflection(t *testing.T) {
	t.Parallel()
	base, _, _ := start(t)
	stream := grpcreflect.NewClient(h2cClient(), base, connect.WithGRPC()).NewStream(context.Background())
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != capabilityv1connect.CapabilityServiceName {
		t.Fatalf("ListServices = %v", names)
	}
	files, err := stream.FileContainingSymbol(capabilityv1connect.CapabilityServiceName)
	if err != nil || len(files) == 0 {
		t.Fatalf("FileContainingSymbol: %v, %d files", err, len(files))
	}
	// v1alpha too, for older clients.
	res, err := h2cClient().Post(base+"/"+server.ReflectionV1AlphaName+"/ServerReflectionInfo", "application/grpc", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("v1alpha: status %d", res.StatusCode)
	}
}

func TestRunGracefulShutdown(t *testing.T) {
	t.Parallel()
	var taskStopped atomic.Bool
	task := func(ctx context.Context) error {
		<-ctx.Done()
		taskStopped.Store(true)
		return ctx.Err()
	}
	base, _, stop := start(t, task)
	c := capabilityv1connect.NewCapabilityServiceClient(h2cClient(), base)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exercise(context.Background(), connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "slow"}))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the request is in flight
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("request in flight at shutdown failed: %v", err)
	}
	if !taskStopped.Load() {
		t.Fatal("task not cancelled")
	}
	if _, err := c.Exercise(context.Background(), connect.NewRequest(&capabilityv1.ExerciseRequest{})); err == nil {
		t.Fatal("server still serving after Run returned")
	}
}

func TestRunReturnsTaskFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = server.Run(context.Background(), server.New(http.NotFoundHandler()), ln, time.Second,
		func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the task's failure", err)
	}
}

func TestRefusalReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{token.ConnectError(fmt.Errorf("access token: %w", token.ErrSignature)), "signature"},
		{token.ConnectError(fmt.Errorf("x: %w", keys.ErrKeyNotFound)), "unknown_key"},
		{connect.NewError(connect.CodeUnauthenticated, authn.ErrMissingToken), "missing"},
		{fmt.Errorf("wrapped: %w", token.ErrAudience), "audience"},
		{errors.New("database down"), ""},
		{nil, ""},
	} {
		if got := server.RefusalReason(tc.err); got != tc.want {
			t.Errorf("RefusalReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func ExampleRun() {
	ctx, stop := server.SignalContext()
	defer stop()
	log := server.NewLogger(io.Discard, slog.LevelInfo, "example")
	m := server.NewMetrics()
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(capability{}, m.HandlerOption()))
	server.MountReflection(mux, []string{capabilityv1connect.CapabilityServiceName})
	mux.Handle(server.MetricsPath, m.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Error("listen", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond) // stop at once for the example
	defer cancel()
	if err := server.Run(ctx, server.New(mux, server.WithLogger(log)), ln, 0); err != nil {
		log.Error("server stopped", "err", err)
	}
	fmt.Println("stopped")
	// Output: stopped
}
