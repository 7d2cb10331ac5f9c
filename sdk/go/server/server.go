// Package server serves the HTTP of every tokenrelay process, the same way
// everywhere:
//
//   - [New] builds an http.Server with the house settings: HTTP/1.1 (Connect,
//     browsers), HTTP/2 over TLS and unencrypted HTTP/2 with prior knowledge
//     (h2c: gRPC without TLS, as every tokenrelay peer speaks it), a header
//     timeout, bounded headers, a bound on reading each request body, an
//     idle timeout, and no read or write timeout, since WatchOrder is a
//     server stream that lasts as long as its saga. It is the one builder
//     of http.Server in the workspace.
//   - [Run] serves until its context ends (SIGINT or SIGTERM in the mains,
//     see [SignalContext]), runs the process's background [Task]s (a saga
//     runner, a JWKS cache refresh) beside it, and shuts everything down
//     gracefully: the listener closes first, requests in flight get the
//     shutdown timeout to finish, then the tasks are cancelled. [Listen]
//     makes its listener.
//   - [CertReloader] serves HTTPS from a certificate and key in files,
//     read again on SIGHUP or when they change, for the public origins
//     (gatewayd, tokenrelayd).
//   - [H2Transport] is the client side of those servers for a peer's calls:
//     HTTP/2 only, h2c with prior knowledge for http:// (one multiplexed
//     connection per peer, as gRPC needs).
//   - [MountReflection] serves gRPC server reflection, v1 and v1alpha, for
//     the services a server offers, so that buf curl and grpcurl need no
//     schema.
//
// # Refused clients
//
// [Listen] with a filter resets the connections of refused peer addresses
// as they are accepted, before any byte is read, in the listener itself:
// net/http never sees them, so nothing is parsed, answered or started for
// them. It runs before TLS, so a refused client costs no handshake. On
// Linux the listener accepts with accept4 itself, so that a refused
// connection costs three system calls (accept4, setsockopt, close) and
// never becomes a net.Conn: no poller registration, no address lookups.
//
// # Slow clients
//
// Four bounds keep a client from holding a connection by sending slowly or
// not at all: the request headers within [DefaultReadHeaderTimeout]; each
// request body within [DefaultReadBodyTimeout] (see [WithReadBodyTimeout]);
// a keep-alive connection closed after [DefaultIdleTimeout] without a
// request ([WithIdleTimeout]); and headers of at most [DefaultMaxHeaderBytes].
//
// WriteTimeout would cut every WatchOrder stream at its bound, so there is
// none. The body bound is a per-request read deadline instead: a handler
// wrapper sets it (http.ResponseController.SetReadDeadline: the
// connection's deadline over HTTP/1.1, the stream's over HTTP/2) when the
// handler starts, that is once the headers are read, and lifts it itself as
// soon as the body has been read (EOF, or Content-Length bytes). A stream
// that has read its request goes on as long as it likes; a body still
// incomplete at the bound fails to read (a Connect handler answers an
// error, and the server closes an HTTP/1.1 connection whose body it could
// not finish). http.Server.ReadTimeout comes close, but it counts the
// headers' time too, and it leaves streams alone over HTTP/1.1 only because
// net/http happens to clear the connection's deadline when a body hits EOF;
// the wrapper says what it means and does not lean on that. The bound is on
// the whole body, not on the gap between reads: a client trickling a byte
// just inside each gap would otherwise hold the connection forever.
// tokenrelay's request bodies are single small messages, so 30 s is
// generous even for a slow mobile link; the one client stream served, gRPC
// reflection's (buf curl, grpcurl), finishes within milliseconds.
//
// The rule: this package serves and stops serving, nothing else. Metrics
// are package metrics', flags, state and logging package process'; it
// imports neither, so that anything may use it.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Defaults of New and Run.
const (
	// DefaultReadHeaderTimeout bounds how long a client may take to send
	// the request headers (slowloris).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadBodyTimeout bounds how long a client may take to send a
	// request body, counted from the end of its headers (slow bodies; see
	// the package documentation).
	DefaultReadBodyTimeout = 30 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle that long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds the request headers: 64 KiB, the
	// gateway's limit too (tokens travel in headers).
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultShutdownTimeout is how long Run lets requests in flight
	// finish after its context ends before closing their connections.
	DefaultShutdownTimeout = 10 * time.Second
)

// Option configures New.
type Option func(*settings)

// settings is what the options set: the server, and the body bound its
// handler is wrapped with.
type settings struct {
	srv             *http.Server
	readBodyTimeout time.Duration
}

// WithMaxHeaderBytes sets the server's MaxHeaderBytes. Default
// DefaultMaxHeaderBytes.
func WithMaxHeaderBytes(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.srv.MaxHeaderBytes = n
		}
	}
}

// WithReadBodyTimeout bounds how long a client may take to send each
// request body, counted from when its handler starts (the headers read);
// the bound is lifted once the body has been read, so a response stream is
// not cut by it. A body not read in time fails to read. Default
// DefaultReadBodyTimeout; 0 keeps the default, a negative d sets no bound.
func WithReadBodyTimeout(d time.Duration) Option {
	return func(s *settings) {
		if d != 0 {
			s.readBodyTimeout = d
		}
	}
}

// WithIdleTimeout sets how long a keep-alive connection (HTTP/1.1) or an
// HTTP/2 connection without streams may stay idle before the server closes
// it. Default DefaultIdleTimeout; 0 keeps the default, a negative d sets
// none.
func WithIdleTimeout(d time.Duration) Option {
	return func(s *settings) {
		if d != 0 {
			s.srv.IdleTimeout = d
		}
	}
}

// WithLogger sends the server's own errors (TLS handshakes, malformed
// requests, panics in handlers) to log at level Warn. Default: the standard
// logger.
func WithLogger(log *slog.Logger) Option {
	return func(s *settings) { s.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn) }
}

// New returns an http.Server for h with the house settings (see the
// package documentation). Addr is left empty: Run serves on a listener.
func New(h http.Handler, opts ...Option) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	s := settings{
		srv: &http.Server{
			Protocols:         p,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			IdleTimeout:       DefaultIdleTimeout,
			MaxHeaderBytes:    DefaultMaxHeaderBytes,
		},
		readBodyTimeout: DefaultReadBodyTimeout,
	}
	for _, o := range opts {
		o(&s)
	}
	s.srv.Handler = h
	if s.readBodyTimeout > 0 {
		s.srv.Handler = boundBody(h, s.readBodyTimeout)
	}
	return s.srv
}

// Task is work a process runs beside its server until ctx ends, such as
// orderprocessing.Service.Run or jwks.Cache.Run. A task that returns
// ctx.Err() after ctx ended has stopped cleanly.
type Task func(ctx context.Context) error

// Run serves srv on ln and runs tasks until ctx ends or one of them fails.
// Then it shuts srv down gracefully: ln closes at once, requests in flight
// get timeout (DefaultShutdownTimeout when <= 0) to finish, and the
// connections still open after that are closed. Only then are the tasks
// cancelled, so that a request in flight still finds the saga runner
// running, and Run waits for them. It returns the first failure, or nil
// after a clean stop.
func Run(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, tasks ...Task) error {
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()
	// Buffered for every sender, so that none blocks after Run stopped
	// listening.
	errc := make(chan error, 1+len(tasks))
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Go(func() {
			if err := t(taskCtx); err != nil && taskCtx.Err() == nil {
				errc <- err
			}
		})
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Streams still open past the timeout: close them.
		_ = srv.Close()
	}
	<-served
	cancelTasks()
	wg.Wait()
	return first
}

// Listen listens on addr (TCP) for Run. With accept, every connection
// whose peer address accept refuses is reset as it is accepted, before any
// byte of it is read: no TLS handshake, no goroutine, no HTTP parsing, no
// answer; only the accept and the reset. It is the place to turn away a
// client that a handler has already found abusive (the gateway's
// Gateway.AcceptConn, for a client that has spent its budget of failed
// authentications). The reset (SO_LINGER 0) leaves no TIME_WAIT state on
// the server for a flood of refused connections, and TCP keep-alive (Go's
// defaults) is set on the connections served only, not on the refused. On
// Linux the listening socket is the listener's own (SO_REUSEADDR, the
// system's backlog; an address without an IP listens on IPv6 and IPv4)
// and its connections are accepted with accept4: a refused one is closed
// as a bare file descriptor, a served one becomes a net.Conn.
// Wrap the result with tls.NewListener to serve HTTPS: the filter then
// runs before the handshake. accept runs in the server's accept loop, once
// a connection: it must be fast, must not block, and must be safe for
// concurrent use; nil serves every connection.
func Listen(addr string, accept func(remote net.Addr) bool) (net.Listener, error) {
	if accept == nil {
		return net.Listen("tcp", addr)
	}
	if rawAccept {
		return listenRaw(addr, accept)
	}
	lc := net.ListenConfig{KeepAlive: -1} // set below on the served ones
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &filtered{Listener: ln, accept: accept}, nil
}

// filtered is Listen's listener with a filter, where connections are
// accepted through net (see listenRaw for Linux).
type filtered struct {
	net.Listener
	accept func(remote net.Addr) bool
}

func (l *filtered) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.accept(c.RemoteAddr()) {
			return served(c), nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// served sets TCP keep-alive, Go's defaults, on a connection served.
func served(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true}) // zero fields: Go's defaults
	}
	return c
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM, the stop
// signals of a terminal and of every orchestrator.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// H2Transport speaks HTTP/2 only: over TLS for https, h2c with prior
// knowledge for http (what the servers New builds accept, and gRPC needs).
// Calls to one peer share one multiplexed connection.
func H2Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP2(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}
