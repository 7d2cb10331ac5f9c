package embedded_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// TestSlowBodiesCut: 50 connections that each send the headers of a Login
// and a few bytes of its body, and never the rest, are all closed by the
// gateway once the body bound passes; a WatchOrder-like stream is not (see
// sdk/go/server). Before the bound, such connections stayed open
// indefinitely.
func TestSlowBodiesCut(t *testing.T) {
	t.Parallel()
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger:          slog.New(authn.NewLogHandler(slog.DiscardHandler)),
		ReadBodyTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	const n = 50
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		cut      int
		statuses = map[string]int{}
	)
	for range n {
		wg.Go(func() {
			conn, err := net.Dial("tcp", strings.TrimPrefix(sys.URL(), "http://"))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			// Only a guard against a hang; the bound is 200 ms.
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, err = io.WriteString(conn, "POST /tokenrelay.identity.v1.IdentityService/Login HTTP/1.1\r\nHost: x\r\n"+
				"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"username\":")
			if err != nil {
				t.Error(err)
				return
			}
			got, err := io.ReadAll(conn) // until the server closes the connection
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				return // still open: not cut
			}
			status, _, _ := strings.Cut(string(got), "\r\n")
			mu.Lock()
			cut++
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d of %d slow-body connections closed by the server; answers %v", cut, n, statuses)
	if cut != n {
		t.Fatalf("%d of %d slow-body connections still open", n-cut, n)
	}
}
