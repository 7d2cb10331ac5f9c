package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

// capability answers Exercise at once, but for the order id "held": that
// call signals started, is held until release is closed (or the call is
// cancelled), and closes finished when it returns, so that a test knows
// when it is in flight.
type capability struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
	started, release, finished chan struct{}
}

func newCapability() *capability {
	return &capability{started: make(chan struct{}, 1), release: make(chan struct{}), finished: make(chan struct{})}
}

func (c *capability) Exercise(ctx context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	switch req.Msg.GetOrderId() {
	case "held":
		defer close(c.finished)
		c.started <- struct{}{}
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
		}
	case "refused":
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("refused"))
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

// running is a capability service served by Run.
type running struct {
	base string
	srv  *http.Server
	stop func() error // cancels Run's context and returns its result
}

// start serves c with reflection through Run beside tasks.
func start(t *testing.T, c *capability, tasks ...server.Task) running {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(c))
	server.MountReflection(mux, []string{capabilityv1connect.CapabilityServiceName})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(mux, server.WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, srv, ln, 2*time.Second, tasks...) }()
	var stopped bool
	var result error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return running{base: "http://" + ln.Addr().String(), srv: srv, stop: stop}
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
	r := start(t, newCapability())
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		c := capabilityv1connect.NewCapabilityServiceClient(h2cClient(), r.base, opts...)
		ctx := context.Background()
		if _, err := c.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "ok"})); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err := c.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "refused"}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("%s: refused: %v", name, err)
		}
		_, err = c.Compensate(ctx, connect.NewRequest(&capabilityv1.CompensateRequest{}))
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Fatalf("%s: compensate: %v", name, err)
		}
	}
	// HTTP/1.1 too, for Connect clients and browsers.
	c := capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, r.base)
	if _, err := c.Exercise(context.Background(), connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "ok"})); err != nil {
		t.Fatalf("HTTP/1.1: %v", err)
	}
}

func TestReflection(t *testing.T) {
	t.Parallel()
	r := start(t, newCapability())
	stream := grpcreflect.NewClient(h2cClient(), r.base, connect.WithGRPC()).NewStream(context.Background())
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
	res, err := h2cClient().Post(r.base+"/"+server.ReflectionV1AlphaName+"/ServerReflectionInfo", "application/grpc", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("v1alpha: status %d", res.StatusCode)
	}
}

// TestRunGracefulShutdown stops Run while a request is in flight: the
// request still completes, the task is cancelled only after it finished,
// and nothing is served afterwards.
func TestRunGracefulShutdown(t *testing.T) {
	t.Parallel()
	c := newCapability()
	taskStopped := make(chan bool, 1) // whether the request had finished first
	task := func(ctx context.Context) error {
		<-ctx.Done()
		select {
		case <-c.finished:
			taskStopped <- true
		default:
			taskStopped <- false
		}
		return ctx.Err()
	}
	r := start(t, c, task)
	// Shutdown calls this when it begins: the request in flight may finish.
	r.srv.RegisterOnShutdown(func() { close(c.release) })
	client := capabilityv1connect.NewCapabilityServiceClient(h2cClient(), r.base)
	done := make(chan error, 1)
	go func() {
		_, err := client.Exercise(context.Background(), connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "held"}))
		done <- err
	}()
	<-c.started // the request is in flight
	stopErr := make(chan error, 1)
	go func() { stopErr <- r.stop() }()
	if err := <-done; err != nil {
		t.Fatalf("request in flight at shutdown failed: %v", err)
	}
	if err := <-stopErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !<-taskStopped {
		t.Fatal("task cancelled while a request was still in flight")
	}
	if _, err := client.Exercise(context.Background(), connect.NewRequest(&capabilityv1.ExerciseRequest{})); err == nil {
		t.Fatal("server still serving after Run returned")
	}
}

// TestListenFilter: a connection whose peer the filter refuses is reset as
// it is accepted, unanswered, whatever it sends, and never reaches the
// server; the filter is asked once a connection, with the peer's address,
// and the others are served, with TCP keep-alive on.
func TestListenFilter(t *testing.T) {
	t.Parallel()
	var refuse atomic.Bool
	asked := make(chan net.Addr, 4)
	var conns atomic.Int64 // connections the server saw
	srv := server.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !keepAlive(t, r.Context().Value(connKey{}).(net.Conn)) {
			t.Error("a served connection without TCP keep-alive")
		}
		_, _ = w.Write([]byte("served"))
	}), server.WithLogger(slog.New(slog.DiscardHandler)))
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		conns.Add(1)
		return context.WithValue(ctx, connKey{}, c)
	}
	ln, err := server.Listen("127.0.0.1:0", func(remote net.Addr) bool { asked <- remote; return !refuse.Load() })
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	// get sends a request on a new connection and reads until the server
	// closes it. A refused connection may already be reset when Dial
	// returns.
	get := func() (string, error) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			<-asked
			return "", err
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil { // a hang guard
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") // fails if reset first
		got, err := io.ReadAll(conn)
		if remote := <-asked; remote.String() != conn.LocalAddr().String() {
			t.Fatalf("filter asked about %v, want %v", remote, conn.LocalAddr())
		}
		return string(got), err
	}
	if got, err := get(); err != nil || !strings.HasSuffix(got, "served") {
		t.Fatalf("accepted: %q, %v", got, err)
	}
	refuse.Store(true)
	got, err := get()
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatal("refused: kept open")
	}
	if got != "" || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("refused: %q, %v; want closed unanswered", got, err)
	}
	refuse.Store(false)
	if got, err := get(); err != nil || !strings.HasSuffix(got, "served") {
		t.Fatalf("accepted again: %q, %v", got, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("the server saw %d connections, want the 2 served", n)
	}
}

type connKey struct{}

// keepAlive reports whether c has SO_KEEPALIVE set.
func keepAlive(t *testing.T, c net.Conn) bool {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var serr error
	if err := raw.Control(func(fd uintptr) { on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return on != 0
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

func ExampleRun() {
	ctx, stop := server.SignalContext()
	defer stop()
	log := slog.New(slog.DiscardHandler)
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(newCapability()))
	server.MountReflection(mux, []string{capabilityv1connect.CapabilityServiceName})
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

// TestListenAddresses: a filtered listener on every address takes IPv4
// clients too, and one on an IPv6 address serves IPv6; the filter sees
// each client's address as net would report it.
func TestListenAddresses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ listen, dial, peer string }{
		{":0", "127.0.0.1", "127.0.0.1"},
		{"[::1]:0", "::1", "::1"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			peers := make(chan string, 1)
			ln, err := server.Listen(tc.listen, func(remote net.Addr) bool {
				peers <- remote.(*net.TCPAddr).IP.String()
				return true
			})
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tc.listen, err)
			}
			srv := server.New(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("served")) }),
				server.WithLogger(slog.New(slog.DiscardHandler)))
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
			port := ln.Addr().(*net.TCPAddr).Port
			res, err := http.Get("http://" + net.JoinHostPort(tc.dial, strconv.Itoa(port)) + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != "served" {
				t.Fatalf("got %q", body)
			}
			if got := <-peers; got != tc.peer {
				t.Fatalf("the filter saw %s, want %s", got, tc.peer)
			}
		})
	}
}
