package process_test

import (
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestServeBoundsSlowBodies: -read-body-timeout and -idle-timeout (or their
// variables) reach the server Serve runs: a connection that sends its body
// more slowly than the bound is closed.
func TestServeBoundsSlowBodies(t *testing.T) {
	t.Setenv(process.EnvReadBodyTimeout, "50ms")
	t.Setenv(process.EnvIdleTimeout, "")
	p := process.Process{Name: "slow", ShutdownTimeout: time.Second}
	fs := flag.NewFlagSet("slowd", flag.ContinueOnError)
	p.Flags(fs, "127.0.0.1:0")
	if err := fs.Parse([]string{"-idle-timeout", "1m"}); err != nil {
		t.Fatal(err)
	}
	if p.ReadBodyTimeout != 50*time.Millisecond || p.IdleTimeout != time.Minute {
		t.Fatalf("ReadBodyTimeout %v, IdleTimeout %v", p.ReadBodyTimeout, p.IdleTimeout)
	}
	base := serveProcess(t, p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "body not read in time", http.StatusRequestTimeout)
		}
	}))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Only a guard against a hang: the bound is 50 ms.
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn) // until the server closes the connection
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("slow body not cut; read %q", got)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 408 ") {
		t.Fatalf("answered %q", got)
	}
}

// TestBoundsDefaultToServer: unset, the bounds are zero, which Serve passes
// on as the server's defaults.
func TestBoundsDefaultToServer(t *testing.T) {
	t.Setenv(process.EnvReadBodyTimeout, "")
	t.Setenv(process.EnvIdleTimeout, "")
	p := process.Process{Name: "d"}
	p.Flags(flag.NewFlagSet("d", flag.ContinueOnError), "127.0.0.1:0")
	if p.ReadBodyTimeout != 0 || p.IdleTimeout != 0 {
		t.Fatalf("ReadBodyTimeout %v, IdleTimeout %v", p.ReadBodyTimeout, p.IdleTimeout)
	}
}
