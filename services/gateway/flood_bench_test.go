package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
	"github.com/tokenrelay/tokenrelay/services/gateway"
)

var (
	floodRates   = flag.String("flood-rates", "1600,1900", "forged tokens a second BenchmarkForgedTokenFlood's flood client sends, at most: one sub-benchmark each")
	validWorkers = flag.Int("valid-workers", 8, "concurrent requests of BenchmarkForgedTokenFlood's valid client")
)

// Source addresses of the two clients of BenchmarkForgedTokenFlood: on
// Linux the whole of 127.0.0.0/8 is loopback.
const (
	validClientAddr = "127.0.0.2"
	floodClientAddr = "127.0.0.3"
)

// BenchmarkForgedTokenFlood measures the throughput of valid authenticated
// requests (GetBalance with a shopper's access token, from one client
// address) through a gateway on a loopback TCP listener, in front of a
// PointsService that verifies each request's transaction token, as the
// embedded system runs it, logging and counting every request as gatewayd
// does, alone and during a flood of forged access tokens from another
// client address: up to each of -flood-rates a second, over floodWorkers
// raw HTTP/1.1 connections (floodClient), each token with a genuine header
// and claims and a random signature with a canonical scalar (forge), so
// that each costs the gateway a full signature verification unless it is
// refused first. Everything shares
// the machine's cores: the clients' own CPU counts against the gateway.
//
// The b.N valid requests go in 2×floodRounds phases, alone and flooded in
// turn, on one gateway, so that the two figures share the machine's
// conditions; each sub-benchmark reports valid/s alone, valid/s flooded,
// the median of the rounds' ratios (flooded to alone), the forged tokens
// a second sent while flooded, and the process's cores and CPU per valid
// request in each phase:
//
//   - no-budget/RATE: without the failure budget (AuthFailureBurst -1);
//   - budget/RATE: with the default budget.
//
// BENCHMARKS.md has the figures of
//
//	go test -run='^$' -bench=ForgedTokenFlood -benchtime=40000x -count=6 .
func BenchmarkForgedTokenFlood(b *testing.B) {
	type run struct {
		name         string
		burst, flood int
	}
	var runs []run
	for v := range strings.SplitSeq(*floodRates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n <= 0 {
			b.Fatalf("-flood-rates: %q", v)
		}
		runs = append(runs, run{fmt.Sprintf("no-budget/%d", n), -1, n}, run{fmt.Sprintf("budget/%d", n), 0, n})
	}
	for _, bc := range runs {
		b.Run(bc.name, func(b *testing.B) {
			url := floodGateway(b, bc.burst)
			valid := pointsv1connect.NewPointsServiceClient(loopbackClient(b, validClientAddr, *validWorkers), url)
			call := func(ctx context.Context, client pointsv1connect.PointsServiceClient, tok string) error {
				_, err := client.GetBalance(ctx, withBearer(&pointsv1.GetBalanceRequest{}, tok))
				return err
			}
			// Warm the connections and the verified-token cache.
			for range *validWorkers * 4 {
				if err := call(b.Context(), valid, floodToken); err != nil {
					b.Fatal(err)
				}
			}
			// requests sends n valid requests from validWorkers at once.
			requests := func(n int) time.Duration {
				var next atomic.Int64
				var workers sync.WaitGroup
				start := time.Now()
				for range *validWorkers {
					workers.Go(func() {
						for next.Add(1) <= int64(n) {
							if err := call(b.Context(), valid, floodToken); err != nil {
								b.Errorf("valid request refused: %v", err)
								return
							}
						}
					})
				}
				workers.Wait()
				return time.Since(start)
			}
			// flooding starts the flood, on fresh connections, and returns
			// its stop once floodWarmup forged tokens were sent.
			pace := rate.NewLimiter(rate.Limit(bc.flood), 1)
			var forged atomic.Int64
			flooding := func() (stop func()) {
				ctx, cancel := context.WithCancel(b.Context())
				var workers sync.WaitGroup
				running := make(chan struct{})
				var once sync.Once
				from := forged.Load()
				for w := range floodWorkers {
					conn := floodConn(b, url)
					workers.Go(func() {
						defer conn.Close()
						for i := w; pace.Wait(ctx) == nil; i += floodWorkers {
							if status := conn.send(i); status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
								b.Errorf("a forged token was answered HTTP %d", status)
								once.Do(func() { close(running) })
								return
							}
							if forged.Add(1)-from == floodWarmup {
								once.Do(func() { close(running) })
							}
						}
					})
				}
				<-running
				return func() { cancel(); workers.Wait() }
			}

			var alone, flooded, aloneCPU, floodedCPU time.Duration
			var aloneN, floodedN, sent int
			ratios := make([]float64, 0, floodRounds)
			b.ResetTimer()
			for round := range floodRounds {
				n := b.N/(2*floodRounds) + boolInt(round < b.N%(2*floodRounds))
				c0 := cpuNow()
				d := requests(n)
				aloneCPU += cpuNow() - c0
				aloneN, alone = aloneN+n, alone+d
				aloneRate := float64(n) / d.Seconds()

				n = b.N/(2*floodRounds) + boolInt(floodRounds+round < b.N%(2*floodRounds))
				stop := flooding()
				from := forged.Load()
				c0 = cpuNow()
				d = requests(n)
				floodedCPU += cpuNow() - c0
				sent += int(forged.Load() - from)
				stop()
				floodedN, flooded = floodedN+n, flooded+d
				ratios = append(ratios, float64(n)/d.Seconds()/aloneRate)
			}
			b.StopTimer()
			slices.Sort(ratios)
			b.ReportMetric(float64(aloneN)/alone.Seconds(), "valid/s")
			b.ReportMetric(float64(floodedN)/flooded.Seconds(), "flooded-valid/s")
			// The median of the rounds' ratios: each flooded phase against
			// the phase alone just before it, so that a burst of other work
			// on the machine skews one round, not the figure.
			b.ReportMetric(ratios[len(ratios)/2], "ratio")
			b.ReportMetric(float64(sent)/flooded.Seconds(), "forged/s")
			// The process's CPU (the gateway, the upstream and both clients):
			// cores used, and CPU per valid request, flood included.
			b.ReportMetric(aloneCPU.Seconds()/alone.Seconds(), "cores")
			b.ReportMetric(floodedCPU.Seconds()/flooded.Seconds(), "flooded-cores")
			b.ReportMetric(float64(aloneCPU.Microseconds())/float64(aloneN), "cpu-µs/valid")
			b.ReportMetric(float64(floodedCPU.Microseconds())/float64(floodedN), "flooded-cpu-µs/valid")
		})
	}
}

// Phases of BenchmarkForgedTokenFlood.
const (
	floodRounds  = 40 // alone and flooded phases, each
	floodWorkers = 16 // concurrent forged requests at most
	floodWarmup  = 50 // forged tokens sent before a flooded phase is timed
)

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// Shared by every run: the access-token issuer's keys, a shopper's token
// and forgeries of it.
var (
	floodSetup     sync.Once
	floodIDRing    *keys.Ring
	floodToken     string
	floodForgeries []string
)

// floodGateway serves a gateway with failure budget burst on loopback in
// front of an in-process PointsService, and returns its URL.
func floodGateway(b *testing.B, burst int) string {
	b.Helper()
	floodSetup.Do(func() {
		floodIDRing = ring(b)
		floodToken = access(b, issuer(b, idIssuer, floodIDRing), "usr_shopper", "shop", gateway.DefaultAudience)
		floodForgeries = make([]string, 4096)
		for i := range floodForgeries {
			floodForgeries[i] = forge(b, floodToken)
		}
	})
	gwRing := ring(b)
	mux := http.NewServeMux()
	mux.Handle(pointsv1connect.NewPointsServiceHandler(replica{n: 42}, connect.WithInterceptors(authn.NewServerInterceptor(txnVerifier(b, gwRing))),
		connect.WithCompressMinBytes(1<<10))) // as the embedded system's handlers
	// Logged and counted as gatewayd does: a JSON line a request, written
	// to a file (gatewayd's standard error; here /dev/null), and metrics.
	logs, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = logs.Close() })
	gw, err := gateway.New(b.Context(), gateway.Config{
		Keys:             gwRing,
		Logger:           process.NewLogger(logs, slog.LevelInfo, gateway.DefaultName),
		Observe:          metrics.New().Observe,
		Issuers:          []gateway.Issuer{{Issuer: idIssuer, Keys: floodIDRing}},
		Routes:           []gateway.Route{{Service: pointsv1connect.PointsServiceName, Handler: mux}},
		AuthFailureBurst: burst,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := gw.Server(ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	}()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// floodClient is one connection of the flood, from floodClientAddr: HTTP/1.1
// requests written from prepared bytes and their answers read back, one at
// a time, as a flood tool would send them, so that the flood's own CPU on
// this shared machine is small (about half what a generated client's
// costs).
type floodClient struct {
	net.Conn
	r    *bufio.Reader
	reqs [][]byte
}

// floodConn connects a floodClient to the gateway at url.
func floodConn(b *testing.B, url string) *floodClient {
	b.Helper()
	loopbackClient(b, floodClientAddr, 1) // skips where the address is not local
	host := strings.TrimPrefix(url, "http://")
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodClientAddr)}}
	conn, err := d.DialContext(b.Context(), "tcp", host)
	if err != nil {
		b.Fatal(err)
	}
	c := &floodClient{Conn: conn, r: bufio.NewReader(conn), reqs: make([][]byte, 256)}
	for i := range c.reqs {
		c.reqs[i] = []byte("POST " + pointsv1connect.PointsServiceGetBalanceProcedure + " HTTP/1.1\r\nHost: " + host +
			"\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nAuthorization: Bearer " +
			floodForgeries[(i*17)%len(floodForgeries)] + "\r\nContent-Length: 2\r\n\r\n{}")
	}
	return c
}

// send sends the i-th forged request and returns the answer's status, 0
// when the connection failed.
func (c *floodClient) send(i int) int {
	if _, err := c.Write(c.reqs[i%len(c.reqs)]); err != nil {
		return 0
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// loopbackClient is an HTTP client whose connections, at most conns, come
// from the loopback address ip.
func loopbackClient(b *testing.B, ip string, conns int) *http.Client {
	b.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0")) // is ip a local address?
	if err != nil {
		b.Skipf("cannot send from %s: %v", ip, err)
	}
	_ = ln.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	t := &http.Transport{DialContext: d.DialContext, MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns}
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t}
}

// BenchmarkForgedToken is the gateway's own cost (ServeHTTP, no network)
// of one forged access token: verified and refused (no-budget), or
// refused for a spent budget before verification (budget-spent).
func BenchmarkForgedToken(b *testing.B) {
	for _, bc := range []struct {
		name  string
		burst int
	}{
		{"no-budget", -1},
		{"budget-spent", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			idRing := ring(b)
			tok := access(b, issuer(b, idIssuer, idRing), "usr_shopper", "shop", gateway.DefaultAudience)
			forgeries := make([]string, 1024)
			for i := range forgeries {
				forgeries[i] = forge(b, tok)
			}
			cfg := config(ring(b), idRing, gateway.Route{Handler: http.NotFoundHandler()})
			cfg.Logger = slog.New(authn.NewLogHandler(slog.NewJSONHandler(io.Discard, nil)))
			cfg.AuthFailureBurst = bc.burst
			gw, err := gateway.New(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(gw.Close)
			serve := func(i int) int {
				req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, pointsv1connect.PointsServiceGetBalanceProcedure, strings.NewReader("{}"))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Connect-Protocol-Version", "1")
				req.Header.Set("Authorization", "Bearer "+forgeries[i%len(forgeries)])
				rec := httptest.NewRecorder()
				gw.ServeHTTP(rec, req)
				return rec.Code
			}
			serve(0) // spends a budget of 1
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if code := serve(i); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
					b.Fatalf("HTTP %d", code)
				}
			}
		})
	}
}

// cpuNow is the CPU time the process has used, user and system.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
