package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
)

// tinyBound is the body bound of these tests: far below anything a test
// waits for, so that a cut is observed by reading the connection, never by
// sleeping.
const tinyBound = 50 * time.Millisecond

// hangGuard only keeps a broken server from hanging a test run forever; no
// test waits for it when the server works.
const hangGuard = 30 * time.Second

// serve runs h with opts through Run until the test ends, and returns the
// listener's address.
func serve(t *testing.T, h http.Handler, opts ...server.Option) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, server.New(h, opts...), ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ln.Addr().String()
}

// readAll echoes the size of the body it read, or the read's failure as
// 408, as a Connect handler answers a body it could not read.
var readAll = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body not read in time", http.StatusRequestTimeout)
		return
	}
	fmt.Fprintf(w, "%d bytes\n", len(b))
})

// trickle opens a connection, sends the headers of a 100-byte body and 10
// bytes of it, and never the rest: a client sending its body slowly.
func trickle(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetReadDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// cut waits until the server closes conn, and returns what it answered
// before closing. It fails the test if only the hang guard ended the wait.
func cut(t *testing.T, conn net.Conn) string {
	t.Helper()
	got, err := io.ReadAll(conn) // until EOF: the server closed the connection
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v (bound %v); read %q", hangGuard, tinyBound, got)
	}
	return string(got)
}

// TestSlowBodyIsCut: connections that send a body more slowly than the
// bound are answered 408 and closed, however many there are; a body sent
// in time is read as usual.
func TestSlowBodyIsCut(t *testing.T) {
	t.Parallel()
	addr := serve(t, readAll, server.WithReadBodyTimeout(tinyBound))
	const n = 10
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = trickle(t, addr)
	}
	for i, c := range conns {
		if got := cut(t, c); !strings.HasPrefix(got, "HTTP/1.1 408 ") {
			t.Errorf("connection %d: answered %q before closing, want 408", i, firstLine(got))
		}
	}
	// A body sent whole is unaffected.
	res, err := http.Post("http://"+addr+"/upload", "application/json", strings.NewReader(`{"ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(b) != "11 bytes\n" {
		t.Fatalf("whole body: %d %q", res.StatusCode, b)
	}
}

// TestSlowBodyToConnectHandlerIsCut: a Connect handler whose request body
// arrives too slowly answers an error, and the connection is closed (the
// server's own request keeps its body, which tells net/http the body was
// not read to its end).
func TestSlowBodyToConnectHandlerIsCut(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(newCapability()))
	addr := serve(t, mux, server.WithReadBodyTimeout(tinyBound))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "POST "+capabilityv1connect.CapabilityServiceExerciseProcedure+" HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"orderId\":"); err != nil {
		t.Fatal(err)
	}
	if got := cut(t, conn); !strings.HasPrefix(got, "HTTP/1.1 ") {
		t.Fatalf("answered %q", got)
	}
}

// TestSlowBodyIsCutOverH2C: over HTTP/2 the bound ends the stream whose
// body is late (the handler's read fails), not its connection's other
// streams.
func TestSlowBodyIsCutOverH2C(t *testing.T) {
	t.Parallel()
	addr := serve(t, readAll, server.WithReadBodyTimeout(tinyBound))
	body, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/upload", body)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.WriteString(w, "0123456789") }() // and never the rest
	res, err := h2cClient().Do(req)
	if err != nil {
		t.Fatalf("slow body over h2c: %v (a broken bound ends here by the hang guard)", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body over h2c: status %d, want 408", res.StatusCode)
	}
}

// TestIdleConnectionClosed: a keep-alive connection idle longer than the
// idle timeout is closed.
func TestIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	addr := serve(t, readAll, server.WithIdleTimeout(tinyBound))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(hangGuard)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got := cut(t, conn) // the response, then EOF once idle
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.HasSuffix(got, "0 bytes\n") {
		t.Fatalf("answered %q", got)
	}
}

// streamer reads the whole body, then streams a line every time next
// receives, until next is closed: a WatchOrder-like server stream whose
// end the test decides.
type streamer struct {
	next      chan struct{}
	cancelled chan struct{} // closed if the request's context ends first
}

func (s *streamer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	rc := http.NewResponseController(w)
	for i := 0; ; i++ {
		fmt.Fprintf(w, "event %d\n", i)
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case _, ok := <-s.next:
			if !ok {
				return
			}
		case <-r.Context().Done():
			close(s.cancelled)
			return
		}
	}
}

// TestStreamOutlivesBodyBound: a response stream that began after its body
// was read stays open past the body bound, over HTTP/1.1 and h2c. The
// proof of "past the bound" is ordering, not a clock: a slow body sent to
// the same server after the stream began has been cut (its bound started
// later and has passed) before the stream is asked for more.
func TestStreamOutlivesBodyBound(t *testing.T) {
	t.Parallel()
	for name, client := range map[string]*http.Client{"http1": {}, "h2c": h2cClient()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := &streamer{next: make(chan struct{}), cancelled: make(chan struct{})}
			mux := http.NewServeMux()
			mux.Handle("/watch", s)
			mux.Handle("/upload", readAll)
			addr := serve(t, mux, server.WithReadBodyTimeout(tinyBound))
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/watch", strings.NewReader(`{"orderId":"o1"}`))
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			lines := bufio.NewReader(res.Body)
			expect := func(want string) {
				t.Helper()
				got, err := lines.ReadString('\n')
				if got != want {
					t.Fatalf("stream: read %q, %v; want %q", got, err, want)
				}
			}
			expect("event 0\n")
			// A slow body started now is cut: the stream's own bound,
			// which started earlier, has passed too.
			cut(t, trickle(t, addr))
			s.next <- struct{}{}
			expect("event 1\n")
			close(s.next)
			if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
				t.Fatalf("stream end: %q, %v", rest, err)
			}
			select {
			case <-s.cancelled:
				t.Fatal("the stream's context was cancelled")
			default:
			}
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestNewBodyAndIdleDefaults: the bounds are on by default; a negative
// value turns the body bound off.
func TestNewBodyAndIdleDefaults(t *testing.T) {
	t.Parallel()
	if server.DefaultReadBodyTimeout <= 0 || server.DefaultIdleTimeout <= 0 {
		t.Fatal("no default bounds")
	}
	srv := server.New(http.NotFoundHandler(), server.WithIdleTimeout(time.Minute))
	if srv.IdleTimeout != time.Minute || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Fatalf("idle %v, read %v, write %v", srv.IdleTimeout, srv.ReadTimeout, srv.WriteTimeout)
	}
	if server.New(http.NotFoundHandler()).IdleTimeout != server.DefaultIdleTimeout {
		t.Fatal("default idle timeout not set")
	}
}
