package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
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
	floodConns   = flag.Int("flood-workers", 16, "concurrent forged requests of the flood client of BenchmarkForgedTokenFlood, at most")
	floodCPU     = flag.Int("flood-cpu", -1, "BenchmarkForgedTokenFlood: run the flood client in a child process pinned to this CPU, and this process on the other CPUs, as a flood from another machine costs the gateway only its own side; -1: the flood client in this process, sharing every core")
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
// client address: up to each of -flood-rates attempts a second, from
// -flood-workers raw HTTP/1.1 connections at once (floodClient), each token
// with a genuine header and claims and a random signature with a canonical
// scalar (forge), so that each costs the gateway a full signature
// verification unless it is refused first. A flood worker whose connection
// the gateway closes (after an answer with Connection: close, or at accept)
// connects again and goes on at the same pace: an attempt is a request
// answered or a connection closed unanswered. Everything shares the
// machine's cores: the clients' own CPU counts against the gateway. With
// -flood-cpu the flood client runs in a child process (this test binary,
// floodChild) pinned to that CPU, and this process on the others: as a
// flood from another machine would, it then costs the gateway its own
// side (and the kernel's share of the connections) only.
//
// The b.N valid requests go in 2×floodRounds phases, alone and flooded in
// turn, on one gateway, so that the two figures share the machine's
// conditions; each sub-benchmark reports valid/s alone, valid/s flooded,
// the median of the rounds' ratios (flooded to alone), the flood's
// attempts a second while flooded and, of them, the requests answered
// (401 or 429; the rest are connections closed at accept), and the
// process's cores and CPU per valid request in each phase:
//
//   - no-budget/RATE: without the failure budget (AuthFailureBurst -1);
//   - budget/RATE: with the default budget, Gateway.Listen resetting the
//     connections of the spent flood client as they are accepted.
//
// The goroutines carry the pprof label side (valid, gateway, flood), so
// that a CPU profile splits the process's CPU (go tool pprof -tags).
//
// BENCHMARKS.md has the figures of
//
//	go test -run='^$' -bench='^BenchmarkForgedTokenFlood$' -benchtime=40000x -count=6 -flood-cpu=1 .
//	go test -run='^$' -bench='^BenchmarkForgedTokenFlood$/^budget' -benchtime=40000x -count=6 -flood-cpu=1 -flood-workers=64 .
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
			// The valid client's side, inherited by its goroutines; the
			// gateway's and the flood's are labeled where they start.
			pprof.SetGoroutineLabels(pprof.WithLabels(b.Context(), pprof.Labels("side", "valid")))
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
			f := newFlooder(b, url, bc.flood)

			var alone, flooded, aloneCPU, floodedCPU time.Duration
			var aloneN, floodedN, tried, served int
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
				stop := f.flood()
				c0 = cpuNow()
				d = requests(n)
				floodedCPU += cpuNow() - c0
				attempts, answered := stop()
				tried, served = tried+int(attempts), served+int(answered)
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
			// The flood's attempts, and of them the requests answered
			// (the others: connections closed at accept).
			b.ReportMetric(float64(tried)/flooded.Seconds(), "attempts/s")
			b.ReportMetric(float64(served)/flooded.Seconds(), "answered/s")
			// The process's CPU (the gateway, the upstream, the valid client
			// and, without -flood-cpu, the flood client): cores used, and
			// CPU per valid request, flood included.
			b.ReportMetric(aloneCPU.Seconds()/alone.Seconds(), "cores")
			b.ReportMetric(floodedCPU.Seconds()/flooded.Seconds(), "flooded-cores")
			perValid, floodedPerValid := float64(aloneCPU.Microseconds())/float64(aloneN), float64(floodedCPU.Microseconds())/float64(floodedN)
			b.ReportMetric(perValid, "cpu-µs/valid")
			b.ReportMetric(floodedPerValid, "flooded-cpu-µs/valid")
			// The valid throughput kept by the CPU: what the process's
			// cores sustain flooded over alone when they are the bound. Other
			// work on the machine takes wall time from both phases, not CPU
			// time from a request, so this is the steadier figure on a
			// shared machine.
			b.ReportMetric(perValid/floodedPerValid, "cpu-ratio")
		})
	}
}

// A flooder floods the gateway of a BenchmarkForgedTokenFlood run: flood
// starts the flood and returns once floodWarmup attempts were made; its
// stop stops it and returns the attempts made and answered meanwhile.
type flooder interface {
	flood() (stop func() (attempts, answered int64))
}

// newFlooder returns the flooder of -flood-cpu: the flood client in this
// process (flood), or in a child process pinned to that CPU (childFlood).
func newFlooder(b *testing.B, url string, perSecond int) flooder {
	if *floodCPU < 0 {
		return newFlood(b, url, perSecond)
	}
	return startChildFlood(b, url, perSecond)
}

// flood runs f in this process: the flooder of BenchmarkForgedTokenFlood
// without -flood-cpu.
func (f *flood) flood() func() (int64, int64) {
	ctx, cancel := context.WithCancel(context.Background())
	wait := f.start(ctx, 0, floodWarmup)
	from, fromAnswered := f.attempts.Load(), f.answered.Load()
	return func() (int64, int64) {
		attempts, answered := f.attempts.Load()-from, f.answered.Load()-fromAnswered
		cancel()
		wait()
		return attempts, answered
	}
}

// floodChildEnv, in the environment of this test binary, makes it the
// flood's child process (TestMain, floodChild) of a flood of the URL,
// rate and token it gives (a floodOrder in JSON).
const floodChildEnv = "TOKENRELAY_FLOOD_CHILD"

// floodOrder is what the child process floods.
type floodOrder struct {
	URL       string
	PerSecond int
	Workers   int
	Token     string // the access token the child forges
}

// childFlood is the flood client of BenchmarkForgedTokenFlood -flood-cpu:
// this test binary again, pinned to that CPU by taskset, driven over its
// standard input ("start", "stop") and answering on its standard output.
type childFlood struct {
	b   *testing.B
	in  io.WriteCloser
	out *bufio.Scanner
}

// startChildFlood starts the child process of a flood of url, and pins
// this process to the other CPUs (GOMAXPROCS lowered to match, until the
// benchmark ends).
func startChildFlood(b *testing.B, url string, perSecond int) *childFlood {
	b.Helper()
	loopbackClient(b, floodClientAddr, 1) // skips where the address is not local
	n := runtime.NumCPU()
	if *floodCPU >= n || n < 2 {
		b.Fatalf("-flood-cpu %d: this machine has CPUs 0 to %d, and needs another for the gateway", *floodCPU, n-1)
	}
	var others []string
	for c := range n {
		if c != *floodCPU {
			others = append(others, strconv.Itoa(c))
		}
	}
	if out, err := exec.Command("taskset", "-a", "-p", "-c", strings.Join(others, ","), strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		b.Fatalf("taskset: %v: %s", err, out)
	}
	b.Cleanup(func() {
		_ = exec.Command("taskset", "-a", "-p", "-c", "0-"+strconv.Itoa(n-1), strconv.Itoa(os.Getpid())).Run()
	})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n - 1))
	order, err := json.Marshal(floodOrder{URL: url, PerSecond: perSecond, Workers: *floodConns, Token: floodToken})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("taskset", "-c", strconv.Itoa(*floodCPU), os.Args[0])
	cmd.Env = append(os.Environ(), floodChildEnv+"="+string(order), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close() // the child stops at the end of its input
		if err := cmd.Wait(); err != nil {
			b.Errorf("flood child: %v", err)
		}
	})
	return &childFlood{b: b, in: in, out: bufio.NewScanner(out)}
}

// say sends a command to the child and returns the counts of its answer,
// "<word> <attempts> <answered>".
func (c *childFlood) say(cmd, want string) (attempts, answered int64) {
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		c.b.Fatalf("flood child: %v", err)
	}
	if !c.out.Scan() {
		c.b.Fatalf("flood child ended: %v", c.out.Err())
	}
	var word string
	if _, err := fmt.Sscan(c.out.Text(), &word, &attempts, &answered); err != nil || word != want {
		c.b.Fatalf("flood child said %q to %s", c.out.Text(), cmd)
	}
	return attempts, answered
}

func (c *childFlood) flood() func() (int64, int64) {
	from, fromAnswered := c.say("start", "running")
	return func() (int64, int64) {
		attempts, answered := c.say("stop", "stopped")
		return attempts - from, answered - fromAnswered
	}
}

// TestMain runs the tests, or in the flood's child process the flood.
func TestMain(m *testing.M) {
	if order := os.Getenv(floodChildEnv); order != "" {
		if err := floodChild(order, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "flood child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// floodChild is the child process of BenchmarkForgedTokenFlood -flood-cpu:
// it floods the gateway of order, starting at each "start" line of in
// (answering "running" with its counts once floodWarmup attempts were
// made) and stopping at each "stop" (answering "stopped" with its counts),
// until in ends. The counts are cumulative: attempts, answered.
func floodChild(order string, in io.Reader, out io.Writer) error {
	var o floodOrder
	if err := json.Unmarshal([]byte(order), &o); err != nil {
		return err
	}
	floodToken = o.Token
	floodForgeries = make([]string, 4096)
	for i := range floodForgeries {
		floodForgeries[i] = forge(floodToken)
	}
	host := strings.TrimPrefix(o.URL, "http://")
	f := &flood{host: host, reqs: floodRequests(host), pace: rate.NewLimiter(rate.Limit(o.PerSecond), 1), workers: o.Workers}
	var failed atomic.Pointer[error]
	f.fail = func(err error) { failed.CompareAndSwap(nil, &err) }
	stop := func() {}
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		word := ""
		switch lines.Text() {
		case "start":
			ctx, cancel := context.WithCancel(context.Background())
			wait := f.start(ctx, 0, floodWarmup)
			stop, word = func() { cancel(); wait() }, "running"
		case "stop":
			stop()
			stop, word = func() {}, "stopped"
		default:
			return fmt.Errorf("unknown command %q", lines.Text())
		}
		if err := failed.Load(); err != nil {
			return *err
		}
		if _, err := fmt.Fprintln(out, word, f.attempts.Load(), f.answered.Load()); err != nil {
			return err
		}
	}
	stop()
	return lines.Err()
}

// BenchmarkForgedTokenFloodCost is the CPU one attempt of the flood of
// BenchmarkForgedTokenFlood costs, the flood alone (no valid traffic):
// b.N attempts at each of -flood-rates a second, reporting the process's
// CPU per attempt, the gateway's and the flood client's together (they
// share the process: -cpuprofile splits them), and the attempts and
// answers a second:
//
//   - no-budget/RATE: every forged token verified and refused (401);
//   - budget/RATE: the default budget: after its first 20 failures the
//     flood client is answered 429 and its connection closed, and its new
//     connections are closed at accept, but for the 5 a second its budget
//     refills.
//
// BENCHMARKS.md has the split of
//
//	go test -run='^$' -bench='ForgedTokenFloodCost/^budget$/1600' -benchtime=32000x -cpuprofile=cost.prof .
//	go tool pprof -tags cost.prof
func BenchmarkForgedTokenFloodCost(b *testing.B) {
	for v := range strings.SplitSeq(*floodRates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n <= 0 {
			b.Fatalf("-flood-rates: %q", v)
		}
		for _, bc := range []struct {
			name  string
			burst int
		}{{"no-budget", -1}, {"budget", 0}} {
			b.Run(fmt.Sprintf("%s/%d", bc.name, n), func(b *testing.B) {
				f := newFlood(b, floodGateway(b, bc.burst), n)
				b.ResetTimer()
				c0, t0 := cpuNow(), time.Now()
				f.start(b.Context(), int64(b.N), 0)()
				d, cpu := time.Since(t0), cpuNow()-c0
				b.StopTimer()
				b.ReportMetric(float64(f.attempts.Load())/d.Seconds(), "attempts/s")
				b.ReportMetric(float64(f.answered.Load())/d.Seconds(), "answered/s")
				b.ReportMetric(cpu.Seconds()/d.Seconds(), "cores")
				b.ReportMetric(float64(cpu.Microseconds())/float64(f.attempts.Load()), "cpu-µs/attempt")
			})
		}
	}
}

// Phases of BenchmarkForgedTokenFlood.
const (
	floodRounds = 40 // alone and flooded phases, each
	floodWarmup = 50 // flood attempts before a flooded phase is timed
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
			floodForgeries[i] = forge(floodToken)
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
	ln, err := gw.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := gw.Server()
	// Labeled, as the flood and valid clients are, so that a CPU profile
	// splits the process's CPU by side (go tool pprof -tags); the
	// connections' goroutines inherit the label.
	go pprof.Do(context.Background(), pprof.Labels("side", "gateway"), func(context.Context) {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	})
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// flood is the flood client of the benchmarks: workers workers
// (floodClient) sending forged tokens from floodClientAddr, at most rate
// attempts a second in all.
type flood struct {
	host string
	reqs [][]byte
	pace *rate.Limiter
	// attempts counts requests answered and connections closed
	// unanswered; answered the former.
	attempts, answered atomic.Int64
	// fail reports a flood that cannot go on (b.Error in the benchmark's
	// process).
	fail func(error)
	// workers is how many forged requests are in flight at most.
	workers int
}

// newFlood prepares a flood of the gateway at url, perSecond attempts a
// second.
func newFlood(b *testing.B, url string, perSecond int) *flood {
	b.Helper()
	loopbackClient(b, floodClientAddr, 1) // skips where the address is not local
	host := strings.TrimPrefix(url, "http://")
	return &flood{host: host, reqs: floodRequests(host), pace: rate.NewLimiter(rate.Limit(perSecond), 1), fail: func(err error) { b.Error(err) }, workers: *floodConns}
}

// start starts the workers, on fresh connections, which flood until ctx
// ends or, when limit > 0, limit attempts were made in all. It returns
// once warmup attempts were made (or the flood failed); wait waits for the
// workers to stop. The workers are labeled side=flood for CPU profiles.
func (f *flood) start(ctx context.Context, limit, warmup int64) (wait func()) {
	var workers sync.WaitGroup
	var tickets atomic.Int64
	running := make(chan struct{})
	var once sync.Once
	ready := func() { once.Do(func() { close(running) }) }
	if warmup <= 0 {
		ready()
	}
	from := f.attempts.Load()
	for w := range f.workers {
		workers.Go(func() {
			pprof.Do(ctx, pprof.Labels("side", "flood"), func(ctx context.Context) {
				c := &floodClient{addr: f.host, reqs: f.reqs}
				defer c.close()
				for i := w; (limit <= 0 || tickets.Add(1) <= limit) && f.pace.Wait(ctx) == nil; i += f.workers {
					status, err := c.send(ctx, i)
					switch {
					case ctx.Err() != nil:
						return
					case err != nil:
						f.fail(fmt.Errorf("flood client: %w", err))
						ready()
						return
					case status == http.StatusUnauthorized || status == http.StatusTooManyRequests:
						f.answered.Add(1)
					case status != 0: // 0: closed unanswered
						f.fail(fmt.Errorf("a forged token was answered HTTP %d", status))
						ready()
						return
					}
					if f.attempts.Add(1)-from == warmup {
						ready()
					}
				}
			})
		})
	}
	<-running
	return workers.Wait
}

// floodClient is one worker of the flood, from floodClientAddr: HTTP/1.1
// requests written from prepared bytes (floodRequests) and their answers
// read back, one at a time, as a flood tool would send them, so that the
// flood's own CPU on this shared machine is small (about half what a
// generated client's costs). When the gateway closes its connection it
// connects again for the next request.
type floodClient struct {
	addr string
	reqs [][]byte
	conn net.Conn // nil: connect for the next request
	r    *bufio.Reader
}

// floodRequests are the flood's requests to the gateway at host, each
// with a different forgery.
func floodRequests(host string) [][]byte {
	reqs := make([][]byte, 256)
	for i := range reqs {
		reqs[i] = []byte("POST " + pointsv1connect.PointsServiceGetBalanceProcedure + " HTTP/1.1\r\nHost: " + host +
			"\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nAuthorization: Bearer " +
			floodForgeries[(i*17)%len(floodForgeries)] + "\r\nContent-Length: 2\r\n\r\n{}")
	}
	return reqs
}

// floodDialer connects from floodClientAddr.
var floodDialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodClientAddr)}, KeepAlive: -1}

// send sends the i-th forged request, on a new connection when the last
// one was closed, and returns the answer's status: 0 when the connection
// was closed (or reset) unanswered, as the gateway closes the connections
// of a client over its budget at accept. It fails only when the flood
// cannot go on: no connection made, for another reason than a reset.
func (c *floodClient) send(ctx context.Context, i int) (int, error) {
	if c.conn == nil {
		conn, err := floodDialer.DialContext(ctx, "tcp", c.addr)
		switch {
		case errors.Is(err, syscall.ECONNRESET):
			return 0, nil // closed at accept before the dial returned
		case err != nil:
			return 0, err
		}
		c.conn = conn
		if c.r == nil {
			c.r = bufio.NewReader(conn)
		} else {
			c.r.Reset(conn)
		}
	}
	if _, err := c.conn.Write(c.reqs[i%len(c.reqs)]); err != nil {
		c.close()
		return 0, nil
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.close()
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.Close {
		c.close()
	}
	return res.StatusCode, nil
}

func (c *floodClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
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
				forgeries[i] = forge(tok)
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
