package process_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the database/sql driver "pgx"

	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// addrLog is a slog handler that hands the "addr" of the "listening" line
// to a test: how a test learns the port a Process serves on.
type addrLog struct{ addrs chan<- string }

func (h addrLog) Enabled(context.Context, slog.Level) bool { return true }
func (h addrLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h addrLog) WithGroup(string) slog.Handler            { return h }
func (h addrLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				h.addrs <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

// serveProcess runs p.Serve for h until the test ends and returns its base
// URL.
func serveProcess(t *testing.T, p process.Process, h http.Handler) string {
	t.Helper()
	addrs := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, slog.New(addrLog{addrs}), h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return "http://" + a
	case err := <-done:
		t.Fatalf("Serve: %v", err)
		return ""
	}
}

func status(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestServeProbesWithDatabaseDown: every process serves liveness apart
// from readiness. With its database down (connections refused) the
// process is alive (/livez 200: an orchestrator must not restart it for a
// dependency's blip) and not ready (/readyz and, for compatibility,
// /healthz 503: take it out of rotation).
func TestServeProbesWithDatabaseDown(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses at once: a database that is down.
	db, err := sql.Open("pgx", "postgres://u@127.0.0.1:1/x?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mux := http.NewServeMux()
	// What every service mounts: readiness with its database ping.
	mux.Handle("GET "+health.Path, health.Handler(map[string]health.Check{"database": db.PingContext}))
	base := serveProcess(t, process.Process{Name: "probes", Addr: "127.0.0.1:0", ShutdownTimeout: time.Second}, mux)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/livez", 200, "ok\n"},
		{"/readyz", 503, "unhealthy: database\n"},
		{"/healthz", 503, "unhealthy: database\n"},
	} {
		if code, body := status(t, base+tc.path); code != tc.code || body != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
}
