// Command load drives complete checkouts against a running tokenrelay and
// reports what a platform team needs before adopting the pattern:
// throughput, latency percentiles per RPC and per checkout, errors by code,
// the server's CPU time and peak memory, and the efficiency of a checkout:
// the time its signatures must take (the cryptographic floor, signatures
// counted by the server times their unit cost measured in this run) divided
// by the CPU time the server really spent on it.
//
// Each virtual user logs in once as the demo shopper (before the measured
// phase: logins hash a password with argon2id, deliberately costly), then
// loops: start a
// checkout, confirm a coupon (a fresh one granted to it before the run),
// 100 points and the card ending 4242, place the order and watch it to
// COMPLETED. With -server it starts the server itself on a fresh data
// directory, so it knows its pid for CPU and memory; with -url it drives a
// running one, such as the gateway of the scaled-out deployment, and
// reports the CPU time and peak memory summed over the processes given by
// -pids, and the signatures counted by each process's Prometheus metrics
// (-metrics, tokenrelay_signatures_total). -postgres adds the CPU time of
// every PostgreSQL process on the machine, reported apart. Every run also
// reports how busy the machine was meanwhile outside the processes it
// measures (other users of a shared machine), so that a noisy run shows.
// With -server it also reports what the run left on disk: each SQLite
// database's file size and live size (pages in use), after the server ran
// idle -settle long (its purge runs meanwhile; -server-args passes it
// -retention and the like) and stopped. Every virtual user is the one
// demo shopper, watching one order at a time: -server starts the server
// with -watch-per-user set to -users, and a deployment driven with -url
// needs the same (TOKENRELAY_WATCH_PER_USER of every OrderProcessing
// replica, as make bench-scaleout sets it), or watches beyond the default
// 8 a user are refused with resource_exhausted. Loopback only.
//
//	go run ./bench/load -server bin/tokenrelayd -users 32 -checkouts 20
//	go run ./bench/load -server bin/tokenrelayd -users 8 -checkouts 6250 -timeout 60m \
//		-server-args "-retention=1m -sealed-token-retention=1m -purge-every=15s" -settle 420s
//	go run ./bench/load -url http://127.0.0.1:8080 -pids 101,102 \
//		-metrics http://127.0.0.1:8081,http://127.0.0.1:8082 -postgres
//
// make bench-scaleout runs the second form against scripts/scaleout.sh's
// deployment (SCALEOUT_RUN), after the same points on the embedded system.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	couponsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	typev1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/type/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/client"
)

// Config is the command line.
type Config struct {
	Server    string        // binary to start; "" drives URL
	URL       string        // base URL when Server is ""
	Users     int           // concurrent virtual users
	Checkouts int           // checkouts per user
	Timeout   time.Duration // bound on the whole run
	Flood     int           // workers sending forged access tokens meanwhile
	JSON      string        // write the report here too
	Label     string        // names the system in the report ("embedded", "scale-out")

	CPUProfile string        // with Server: passed to it as -cpuprofile
	ServerArgs []string      // with Server: more flags for it (-retention=1m ...)
	Settle     time.Duration // with Server: let it run idle this long after the load, before its data is measured
	Pids       []int         // with URL: the processes of the deployment
	Metrics    []string      // with URL: base URLs whose /metrics count signatures
	Postgres   bool          // also measure every PostgreSQL process's CPU
	Sample     time.Duration // sample the processes' memory and goroutines this often during the run
	Idle       time.Duration // measure the processes' CPU while idle this long first
}

func main() {
	var cfg Config
	flag.StringVar(&cfg.Server, "server", "", "tokenrelayd binary to start on a fresh data directory (enables CPU and memory figures)")
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of a running tokenrelay, when -server is not given")
	flag.IntVar(&cfg.Users, "users", 8, "concurrent virtual users")
	flag.IntVar(&cfg.Checkouts, "checkouts", 10, "checkouts per user")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.StringVar(&cfg.JSON, "json", "", "also write the report as JSON to this file")
	flag.IntVar(&cfg.Flood, "flood", 0, "workers that send requests with forged access tokens (a real token's claims, a wrong signature) during the run")
	flag.StringVar(&cfg.Label, "label", "", "name of the system under test, printed in the report (default: embedded with -server, else the URL)")
	flag.StringVar(&cfg.CPUProfile, "cpuprofile", "", "with -server: the server writes a CPU profile of its whole run to this file")
	flag.Func("server-args", "with -server: more flags for the server, separated by spaces (for example \"-retention=1m -purge-every=10s\")", func(v string) error {
		cfg.ServerArgs = append(cfg.ServerArgs, strings.Fields(v)...)
		return nil
	})
	flag.DurationVar(&cfg.Settle, "settle", 0, "with -server: after the load, let the server run idle this long (its purge runs meanwhile) before it is stopped and the size of its data directory is measured")
	flag.Func("pids", "with -url: comma-separated pids (or @FILE, pids separated by commas or white space) of the deployment's processes, for CPU time and peak memory", func(v string) error {
		pids, err := parsePids(v)
		cfg.Pids = pids
		return err
	})
	flag.Func("metrics", "with -url: comma-separated base URLs of the processes whose /metrics count signatures (tokenrelay_signatures_total); default: URL", func(v string) error {
		for u := range strings.SplitSeq(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cfg.Metrics = append(cfg.Metrics, strings.TrimSuffix(u, "/"))
			}
		}
		return nil
	})
	flag.DurationVar(&cfg.Idle, "idle", 0, "before the run, measure the CPU time the processes (and PostgreSQL) spend this long without load: their background work (pollers, timers)")
	flag.DurationVar(&cfg.Sample, "sample", 0, "during the run, sample this often the resident memory of the processes and their goroutines (go_goroutines of the /metrics endpoints): a soak shows whether they stay flat")
	flag.BoolVar(&cfg.Postgres, "postgres", false, "also report the CPU time of every PostgreSQL process on this machine (the database of a scaled-out deployment)")
	flag.Parse()
	if cfg.Label == "" {
		cfg.Label = "embedded"
		if cfg.Server == "" {
			cfg.Label = cfg.URL
		}
	}
	rep, err := run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	rep.print(os.Stdout)
	if cfg.JSON != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(cfg.JSON, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
	}
	if rep.Errors > 0 {
		os.Exit(1)
	}
}

// server is a tokenrelayd this run started.
type server struct {
	cmd    *exec.Cmd
	dir    string
	exited bool
}

func startServer(ctx context.Context, bin, cpuprofile string, extra []string) (*server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "tokenrelay-load-")
	if err != nil {
		return nil, "", err
	}
	args := []string{"-addr", addr, "-data", filepath.Join(dir, "data")}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	s := &server{cmd: cmd, dir: dir}
	url := "http://" + addr
	// Ready, not merely listening: tokenrelayd is ready once its demo data
	// is seeded, which the load needs (the card ending 4242).
	for deadline := time.Now().Add(60 * time.Second); ; {
		if res, err := http.Get(url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, url, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, "", errors.New("the server did not come up within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.shutdown()
	_ = os.RemoveAll(s.dir)
}

// shutdown stops the server gracefully (its databases are closed, their
// write-ahead logs checkpointed), at most once, leaving its data directory.
func (s *server) shutdown() {
	if s.exited {
		return
	}
	s.exited = true
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// ticks is USER_HZ on Linux: the unit of the CPU times in /proc.
const ticks = 100

// procCPU reads a process's command name, its CPU time (user + system) and
// that of its children it has waited for, from /proc/PID/stat.
func procCPU(pid int) (comm string, cpu, children time.Duration, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, err
	}
	// The command name is in parentheses and may contain spaces; the
	// fields after it start with field 3 (1-based): utime, stime, cutime
	// and cstime are fields 14 to 17.
	open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	if open < 0 || end < open || end+2 > len(stat) {
		return "", 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[end+2:]))
	if len(f) < 15 {
		return "", 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	n := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * time.Second / ticks
	}
	return string(stat[open+1 : end]), n(11) + n(12), n(13) + n(14), nil
}

// usage reads the CPU time (user + system) and peak resident memory of a
// process from /proc.
func usage(pid int) (cpu time.Duration, peakKiB int64, err error) {
	if _, cpu, _, err = procCPU(pid); err != nil {
		return 0, 0, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			peakKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return cpu, peakKiB, nil
}

// usageOf sums usage over pids: the CPU time and the peak memory of every
// process of a deployment.
func usageOf(pids []int) (cpu time.Duration, peakKiB int64, err error) {
	for _, pid := range pids {
		c, p, err := usage(pid)
		if err != nil {
			return 0, 0, fmt.Errorf("process %d: %w", pid, err)
		}
		cpu, peakKiB = cpu+c, peakKiB+p
	}
	return cpu, peakKiB, nil
}

// cpuByName sums the CPU time of pids by command name.
func cpuByName(pids []int) (map[string]time.Duration, error) {
	m := map[string]time.Duration{}
	for _, pid := range pids {
		comm, cpu, _, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		m[comm] += cpu
	}
	return m, nil
}

// idleCPU measures the CPU seconds per second that pids (and PostgreSQL)
// spend over d without load.
func idleCPU(ctx context.Context, pids []int, postgres bool, d time.Duration) (server, db float64, err error) {
	s0, _, err := usageOf(pids)
	if err != nil {
		return 0, 0, err
	}
	var db0, db1 time.Duration
	if postgres {
		if db0, _, err = postgresCPU(); err != nil {
			return 0, 0, err
		}
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(d):
	}
	s1, _, err := usageOf(pids)
	if err != nil {
		return 0, 0, err
	}
	if postgres {
		if db1, _, err = postgresCPU(); err != nil {
			return 0, 0, err
		}
	}
	el := time.Since(t0).Seconds()
	return (s1 - s0).Seconds() / el, (db1 - db0).Seconds() / el, nil
}

// postgresCPU sums the CPU time of every process named postgres on the
// machine, with the time of their children that have exited: a backend's
// time moves into the postmaster's children time when it exits, so the
// difference of two readings also counts backends that started or ended in
// between. It is machine-wide: other users of the same server count too.
func postgresCPU() (time.Duration, int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	var total time.Duration
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, cpu, children, err := procCPU(pid)
		if err != nil || comm != "postgres" {
			continue // gone, or not PostgreSQL
		}
		total += cpu + children
		n++
	}
	if n == 0 {
		return 0, 0, errors.New("no postgres process is visible in /proc")
	}
	return total, n, nil
}

// machineCPU returns the machine's busy CPU time since boot, all CPUs
// together, from the first line of /proc/stat (user, nice, system, irq,
// softirq, steal; not idle nor iowait).
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: unexpected format")
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		busy += v
	}
	return time.Duration(busy) * time.Second / ticks, nil
}

// parsePids reads "1,2,3" or "@FILE" (pids separated by commas or white
// space).
func parsePids(v string) ([]int, error) {
	if name, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		v = string(b)
	}
	var pids []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		return nil, errors.New("no pids")
	}
	return pids, nil
}

type counters struct{ Signed, Verified int64 }

// readCounters sums the signature counters on the /metrics of the
// processes whose base URLs are in metrics, or of the server at url when
// metrics is empty (the embedded system counts for all its services).
func readCounters(url string, metrics []string) (counters, error) {
	if len(metrics) == 0 {
		metrics = []string{url}
	}
	var c counters
	for _, base := range metrics {
		s, v, err := scrapeSignatures(base + "/metrics")
		if err != nil {
			return c, err
		}
		c.Signed, c.Verified = c.Signed+s, c.Verified+v
	}
	return c, nil
}

var signaturesLine = regexp.MustCompile(`(?m)^tokenrelay_signatures_total\{op="(sign|verify)"\} (\S+)$`)

// scrapeSignatures reads tokenrelay_signatures_total{op="sign"} and
// {op="verify"} from a Prometheus endpoint.
func scrapeSignatures(url string) (signed, verified int64, err error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return 0, 0, err
	}
	if res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %s", url, res.Status)
	}
	found := 0
	for _, m := range signaturesLine.FindAllSubmatch(body, -1) {
		v, err := strconv.ParseFloat(string(m[2]), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %s: %w", url, m[0], err)
		}
		if string(m[1]) == "sign" {
			signed = int64(v)
		} else {
			verified = int64(v)
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s has no tokenrelay_signatures_total{op=\"sign\"|\"verify\"} (a binary from before the metric?)", url)
	}
	return signed, verified, nil
}

// unitCosts measures the CPU time of Ed25519 signing and verification of a
// token-sized input in this process, on this machine, in this run: the
// thread's own CPU clock, as the server's cost is CPU time too, so that a
// busy machine (which stretches wall time, not CPU time) does not inflate
// the efficiency.
func unitCosts() (sign, verify time.Duration) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 600)
	sig := ed25519.Sign(priv, msg)
	const n = 2000
	return cpuPerOp(n, func() { ed25519.Sign(priv, msg) }), cpuPerOp(n, func() { ed25519.Verify(pub, msg, sig) })
}

// cpuPerOp runs op n times on one OS thread and returns the thread's CPU
// time per run.
func cpuPerOp(n int, op func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	for range n {
		op()
	}
	return (threadCPU() - start) / time.Duration(n)
}

// threadCPU reads the calling thread's CPU clock.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err) // Linux has had this clock since 2.6.12
	}
	return time.Duration(ts.Nano())
}

// recorder collects latencies by name and errors by code.
type recorder struct {
	mu     sync.Mutex
	lat    map[string][]time.Duration
	errors map[string]int
}

func (r *recorder) add(name string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[name] = append(r.lat[name], d)
	if err != nil {
		r.errors[name+": "+connect.CodeOf(err).String()]++
	}
}

func (r *recorder) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		r.add(procName(req.Spec().Procedure), time.Since(start), err)
		return res, err
	}
}

func (r *recorder) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next // WatchOrder is timed by the checkout loop
}

func (r *recorder) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// ms formats a duration in milliseconds with two decimals, "–" for none.
func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func procName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// session logs user in with the Go client SDK: the access token refreshed
// as needed during a long run, an idempotency key on every mutating call.
// Without its retries: the driver reports every failure. opts are added to
// the generated clients (the latency recorder).
func session(ctx context.Context, url string, hc *http.Client, user, password string, opts ...connect.ClientOption) (*client.Client, client.Session, error) {
	c := client.New(url, client.WithHTTPClient(hc), client.WithRetries(0), client.WithClientOptions(opts...))
	s, err := c.Login(ctx, user, password)
	return c, s, err
}

// prepare grants the shopper, as the demo admin, one coupon per checkout of
// the run and enough points, and returns the id of the card ending 4242.
func prepare(ctx context.Context, url string, hc *http.Client, total int) (codes []string, card string, err error) {
	ac, _, err := session(ctx, url, hc, "admin", "admin-demo")
	if err != nil {
		return nil, "", fmt.Errorf("admin login: %w", err)
	}
	sc, shopper, err := session(ctx, url, hc, "shopper", "shopper-demo")
	if err != nil {
		return nil, "", fmt.Errorf("shopper login: %w", err)
	}
	id := shopper.User.ID
	now := time.Now()
	for i := range total {
		code := fmt.Sprintf("LOAD-%d-%d", now.UnixNano(), i)
		codes = append(codes, code)
		if _, err := ac.Coupons.GrantCoupon(ctx, connect.NewRequest(&couponsv1.GrantCouponRequest{UserId: id, Campaign: &couponsv1.Campaign{
			Code: code, Description: "load test", Kind: couponsv1.DiscountKind_DISCOUNT_KIND_FIXED,
			AmountOff: &typev1.Money{AmountMinor: 100, Currency: "EUR"}, MinimumSpend: &typev1.Money{Currency: "EUR"},
			ValidFrom: timestamppb.New(now.Add(-time.Hour)), ValidUntil: timestamppb.New(now.Add(24 * time.Hour)),
		}})); err != nil {
			return nil, "", fmt.Errorf("grant coupon: %w", err)
		}
	}
	if _, err := ac.Points.GrantPoints(ctx, connect.NewRequest(&pointsv1.GrantPointsRequest{UserId: id, Points: int64(total) * 100, Reason: "load test"})); err != nil {
		return nil, "", fmt.Errorf("grant points: %w", err)
	}
	pms, err := sc.Payments.ListPaymentMethods(ctx, connect.NewRequest(&paymentsv1.ListPaymentMethodsRequest{}))
	if err != nil {
		return nil, "", err
	}
	for _, pm := range pms.Msg.GetPaymentMethods() {
		if pm.GetLast4() == "4242" {
			return codes, pm.GetId(), nil
		}
	}
	return nil, "", errors.New("the shopper has no card ending 4242 (was the demo data seeded?)")
}

// checkout runs one complete checkout and returns an error naming the step
// that failed.
func checkout(ctx context.Context, c *client.Client, coupon, card string) error {
	started, err := c.Orders.StartCheckout(ctx, connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "TEA-GREEN-100G", Quantity: 2}, {Sku: "INFUSER-STEEL", Quantity: 1}},
	}))
	if err != nil {
		return fmt.Errorf("start checkout: %w", err)
	}
	cot, total := started.Msg.GetCheckoutToken(), started.Msg.GetCheckout().GetTotal().GetAmountMinor()
	cp, err := c.Coupons.ConfirmCoupon(ctx, connect.NewRequest(&couponsv1.ConfirmCouponRequest{CheckoutToken: cot, Code: coupon}))
	if err != nil {
		return fmt.Errorf("confirm coupon: %w", err)
	}
	pt, err := c.Points.ConfirmPoints(ctx, connect.NewRequest(&pointsv1.ConfirmPointsRequest{CheckoutToken: cot, Points: 100}))
	if err != nil {
		return fmt.Errorf("confirm points: %w", err)
	}
	rest := total - cp.Msg.GetDiscount().GetAmountMinor() - pt.Msg.GetValue().GetAmountMinor()
	py, err := c.Payments.ConfirmPayment(ctx, connect.NewRequest(&paymentsv1.ConfirmPaymentRequest{
		CheckoutToken: cot, PaymentMethodId: card, Amount: &typev1.Money{AmountMinor: rest, Currency: "EUR"},
	}))
	if err != nil {
		return fmt.Errorf("confirm payment: %w", err)
	}
	placed, err := c.Orders.PlaceOrder(ctx, connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: started.Msg.GetCheckout().GetId(), IdempotencyKey: started.Msg.GetCheckout().GetId(),
		ConfirmationTokens: []string{cp.Msg.GetConfirmationToken(), pt.Msg.GetConfirmationToken(), py.Msg.GetConfirmationToken()},
	}))
	if err != nil {
		return fmt.Errorf("place order: %w", err)
	}
	stream, err := c.Orders.WatchOrder(ctx, connect.NewRequest(&orderprocessingv1.WatchOrderRequest{OrderId: placed.Msg.GetOrder().GetId()}))
	if err != nil {
		return fmt.Errorf("watch order: %w", err)
	}
	var last *orderprocessingv1.Order
	for stream.Receive() {
		last = stream.Msg().GetOrder()
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("watch order: %w", err)
	}
	if last.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
		return fmt.Errorf("order ended %v", last.GetStatus())
	}
	return nil
}

// Report is what a run measured. CPU times cover the measured phase (after
// the logins); peak memory is each process's high-water mark since it
// started, summed over the processes.
type Report struct {
	Label                string
	Users, Checkouts     int
	Errors               int
	ErrorsByCode         map[string]int
	Wall                 time.Duration
	Throughput           float64 // completed checkouts per second
	Latency              map[string]Percentiles
	ServerProcs          int                      // processes whose CPU and memory are summed
	CPUByProcess         map[string]time.Duration // ServerCPU by command name (several pids)
	IdleServerCPU        float64                  // with -idle: CPU seconds per second without load, the processes
	IdleDBCPU            float64                  // ... and PostgreSQL
	ServerCPU            time.Duration
	ServerPeakMiB        float64
	SignedPerCheckout    float64
	VerifiedPerCheckout  float64
	SignCost, VerifyCost time.Duration
	FloorPerCheckout     time.Duration
	CPUPerCheckout       time.Duration
	Efficiency           float64 // floor / server CPU per checkout
	// With -postgres: every PostgreSQL process's CPU time, and the
	// efficiency with it counted (the comparable figure for a deployment
	// whose database is out of process).
	DBProcs          int
	DBCPU            time.Duration
	DBCPUPerCheckout time.Duration
	EfficiencyWithDB float64
	DriverCPU        time.Duration // this process: the virtual users
	MachineCPU       time.Duration // busy CPU time of the whole machine
	MachineCapacity  time.Duration // wall time x CPUs
	OtherCPU         time.Duration // machine busy time outside the measured processes and the driver
	Flood            int           // forged-token workers
	Forged           int64         // forged requests sent
	ForgedRefused    int64         // of which refused Unauthenticated
	// Sizes is the server's data directory after the run (with -server).
	Sizes *Sizes `json:",omitempty"`
	// Samples are the processes' state during the run (with -sample).
	Samples []Sample `json:",omitempty"`
}

// Sample is the measured processes' state at one moment of the run.
type Sample struct {
	At         time.Duration
	Checkouts  int64 // completed so far
	RSSKiB     int64 // resident memory, summed over the processes
	Goroutines int64 // go_goroutines, summed over the /metrics endpoints
}

var goroutinesLine = regexp.MustCompile(`(?m)^go_goroutines (\S+)$`)

// sample reads the resident memory of pids and the goroutines the metrics
// endpoints report.
func sample(pids []int, metrics []string) (rssKiB, goroutines int64, err error) {
	for _, pid := range pids {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, 0, err
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kib, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				rssKiB += kib
			}
		}
	}
	for _, base := range metrics {
		res, err := http.Get(base + "/metrics")
		if err != nil {
			return 0, 0, err
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
		res.Body.Close()
		if err != nil {
			return 0, 0, err
		}
		m := goroutinesLine.FindSubmatch(body)
		if m == nil {
			return 0, 0, fmt.Errorf("%s/metrics has no go_goroutines", base)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			return 0, 0, err
		}
		goroutines += int64(v)
	}
	return rssKiB, goroutines, nil
}

// Percentiles of one latency series.
type Percentiles struct {
	N             int
	P50, P95, P99 time.Duration
}

func percentiles(ds []time.Duration) Percentiles {
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Percentiles{N: len(ds), P50: at(0.50), P95: at(0.95), P99: at(0.99)}
}

func run(ctx context.Context, cfg Config) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout+cfg.Settle)
	defer cancel()
	url := cfg.URL
	var srv *server
	if cfg.Server != "" {
		var err error
		// Every virtual user is the one demo shopper, each watching its
		// order: the server must let that user hold as many WatchOrder
		// streams as there are virtual users (its default cap is 8 a user).
		args := append([]string{fmt.Sprintf("-watch-per-user=%d", cfg.Users)}, cfg.ServerArgs...)
		if srv, url, err = startServer(ctx, cfg.Server, cfg.CPUProfile, args); err != nil {
			return nil, err
		}
		defer srv.stop()
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * cfg.Users}}
	total := cfg.Users * cfg.Checkouts
	granted, card, err := prepare(ctx, url, hc, total)
	if err != nil {
		return nil, err
	}
	signCost, verifyCost := unitCosts()
	rec := &recorder{lat: map[string][]time.Duration{}, errors: map[string]int{}}
	// Every user logs in first; the measured phase starts when all have,
	// so that the password hashing of the logins (argon2id, deliberately
	// expensive, once per session) is reported apart from the checkouts.
	sessions := make([]*client.Client, cfg.Users)
	for i := range sessions {
		if sessions[i], _, err = session(ctx, url, hc, "shopper", "shopper-demo", connect.WithInterceptors(rec)); err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
	}
	pids := cfg.Pids
	if srv != nil {
		pids = []int{srv.cmd.Process.Pid}
	}
	var idleServer, idleDB float64
	if cfg.Idle > 0 && len(pids) > 0 {
		if idleServer, idleDB, err = idleCPU(ctx, pids, cfg.Postgres, cfg.Idle); err != nil {
			return nil, err
		}
	}
	byName0, err := cpuByName(pids)
	if err != nil {
		return nil, err
	}
	c0, err := readCounters(url, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	var cpu0, db0 time.Duration
	if len(pids) > 0 {
		if cpu0, _, err = usageOf(pids); err != nil {
			return nil, err
		}
	}
	if cfg.Postgres {
		if db0, _, err = postgresCPU(); err != nil {
			return nil, err
		}
	}
	_, self0, _, err := procCPU(os.Getpid())
	if err != nil {
		return nil, err
	}
	machine0, err := machineCPU()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	floodCtx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	var flood sync.WaitGroup
	var forged, refused int64
	var floodMu sync.Mutex
	for range cfg.Flood {
		flood.Go(func() {
			n, r := floodForged(floodCtx, url, hc)
			floodMu.Lock()
			forged, refused = forged+n, refused+r
			floodMu.Unlock()
		})
	}
	codes := make(chan string, total)
	for _, code := range granted {
		codes <- code
	}
	close(codes)
	var completed atomic.Int64
	for _, c := range sessions {
		wg.Go(func() {
			for range cfg.Checkouts {
				t0 := time.Now()
				err := checkout(ctx, c, <-codes, card)
				rec.add("checkout", time.Since(t0), err)
				completed.Add(1)
			}
		})
	}
	var samples []Sample
	sampleErr := make(chan error, 1)
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	if cfg.Sample > 0 {
		metricsURLs := cfg.Metrics
		if len(metricsURLs) == 0 {
			metricsURLs = []string{url}
		}
		sampling.Go(func() {
			t := time.NewTicker(cfg.Sample)
			defer t.Stop()
			for {
				rss, g, err := sample(pids, metricsURLs)
				if err != nil {
					sampleErr <- err
					return
				}
				samples = append(samples, Sample{At: time.Since(start), Checkouts: completed.Load(), RSSKiB: rss, Goroutines: g})
				select {
				case <-stopSampling:
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	close(stopSampling)
	sampling.Wait()
	select {
	case err := <-sampleErr:
		return nil, fmt.Errorf("sample: %w", err)
	default:
	}
	stopFlood()
	flood.Wait()
	machine1, err := machineCPU()
	if err != nil {
		return nil, err
	}
	_, self1, _, err := procCPU(os.Getpid())
	if err != nil {
		return nil, err
	}
	rep := &Report{Label: cfg.Label, Users: cfg.Users, Checkouts: total, Wall: wall, ErrorsByCode: rec.errors, Latency: map[string]Percentiles{},
		SignCost: signCost, VerifyCost: verifyCost, Flood: cfg.Flood, Forged: forged, ForgedRefused: refused,
		DriverCPU: self1 - self0, MachineCPU: machine1 - machine0, MachineCapacity: wall * time.Duration(runtime.NumCPU()),
		Samples: samples}
	failed := 0
	for name, n := range rec.errors {
		rep.Errors += n
		if strings.HasPrefix(name, "checkout: ") {
			failed += n
		}
	}
	for name, ds := range rec.lat {
		rep.Latency[name] = percentiles(ds)
	}
	rep.Throughput = float64(total-failed) / wall.Seconds()
	if len(pids) > 0 {
		cpu1, peak, err := usageOf(pids)
		if err != nil {
			return nil, err
		}
		rep.ServerProcs = len(pids)
		rep.IdleServerCPU, rep.IdleDBCPU = idleServer, idleDB
		if len(pids) > 1 {
			byName1, err := cpuByName(pids)
			if err != nil {
				return nil, err
			}
			rep.CPUByProcess = map[string]time.Duration{}
			for name, c := range byName1 {
				rep.CPUByProcess[name] = c - byName0[name]
			}
		}
		rep.ServerCPU = cpu1 - cpu0
		rep.ServerPeakMiB = float64(peak) / 1024
	}
	if cfg.Postgres {
		db1, n, err := postgresCPU()
		if err != nil {
			return nil, err
		}
		rep.DBProcs, rep.DBCPU = n, db1-db0
	}
	rep.OtherCPU = max(0, rep.MachineCPU-rep.ServerCPU-rep.DBCPU-rep.DriverCPU)
	c1, err := readCounters(url, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	rep.SignedPerCheckout = float64(c1.Signed-c0.Signed) / float64(total)
	rep.VerifiedPerCheckout = float64(c1.Verified-c0.Verified) / float64(total)
	rep.FloorPerCheckout = time.Duration(rep.SignedPerCheckout*float64(signCost) + rep.VerifiedPerCheckout*float64(verifyCost))
	if rep.ServerCPU > 0 {
		rep.CPUPerCheckout = rep.ServerCPU / time.Duration(total)
		rep.Efficiency = float64(rep.FloorPerCheckout) / float64(rep.CPUPerCheckout)
	}
	if cfg.Postgres && rep.ServerCPU+rep.DBCPU > 0 {
		rep.DBCPUPerCheckout = rep.DBCPU / time.Duration(total)
		rep.EfficiencyWithDB = float64(rep.FloorPerCheckout) / float64(rep.CPUPerCheckout+rep.DBCPUPerCheckout)
	}
	if srv != nil {
		// The size of what the run left: after Settle (the server's purge
		// runs meanwhile), stopped, so that SQLite has checkpointed.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(cfg.Settle):
		}
		srv.shutdown()
		sizes, err := measureDir(filepath.Join(srv.dir, "data"))
		if err != nil {
			return nil, err
		}
		sizes.Settle = cfg.Settle
		rep.Sizes = &sizes
	}
	return rep, nil
}

// floodForged sends GetBalance with forged access tokens until ctx ends: a
// real access token's header and claims with its signature's bytes
// flipped, so that the gateway pays a full signature verification for each.
// It returns how many it sent and how many were refused as Unauthenticated.
func floodForged(ctx context.Context, url string, hc *http.Client) (sent, refused int64) {
	_, s, err := session(ctx, url, hc, "shopper", "shopper-demo")
	if err != nil {
		return 0, 0
	}
	tok := []byte(s.AccessToken)
	tok[len(tok)-5] ^= 0x01 // still base64url, a different signature
	if tok[len(tok)-5] == '.' || tok[len(tok)-5] > 'z' {
		tok[len(tok)-5] = 'A'
	}
	// A forged token sent as it is: no session would keep it.
	points := pointsv1connect.NewPointsServiceClient(hc, url, connect.WithInterceptors(authn.NewBearerInterceptor(string(tok))))
	for ctx.Err() == nil {
		_, err := points.GetBalance(ctx, connect.NewRequest(&pointsv1.GetBalanceRequest{}))
		if ctx.Err() != nil {
			break
		}
		sent++
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			refused++
		}
	}
	return sent, refused
}

func (r *Report) print(w io.Writer) {
	fmt.Fprintf(w, "%s: users %d, checkouts %d, errors %d, wall %v, throughput %.1f checkouts/s\n",
		r.Label, r.Users, r.Checkouts, r.Errors, r.Wall.Round(time.Millisecond), r.Throughput)
	names := make([]string, 0, len(r.Latency))
	for n := range r.Latency {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(w, "%-20s %6s %10s %10s %10s\n", "latency", "n", "p50", "p95", "p99")
	for _, n := range names {
		p := r.Latency[n]
		fmt.Fprintf(w, "%-20s %6d %10v %10v %10v\n", n, p.N, p.P50.Round(10*time.Microsecond), p.P95.Round(10*time.Microsecond), p.P99.Round(10*time.Microsecond))
	}
	for code, n := range r.ErrorsByCode {
		fmt.Fprintf(w, "error %s: %d\n", code, n)
	}
	fmt.Fprintf(w, "signatures per checkout: %.1f signed, %.1f verified; unit costs %v sign, %v verify\n",
		r.SignedPerCheckout, r.VerifiedPerCheckout, r.SignCost, r.VerifyCost)
	fmt.Fprintf(w, "crypto floor per checkout %v", r.FloorPerCheckout.Round(time.Microsecond))
	if r.CPUPerCheckout > 0 {
		fmt.Fprintf(w, "; server CPU per checkout %v; efficiency %.2f; server CPU %v; peak memory %.1f MiB",
			r.CPUPerCheckout.Round(time.Microsecond), r.Efficiency, r.ServerCPU, r.ServerPeakMiB)
		if r.ServerProcs > 1 {
			fmt.Fprintf(w, " (summed over %d processes)", r.ServerProcs)
		}
	}
	fmt.Fprintln(w)
	if len(r.CPUByProcess) > 0 {
		names := slices.Sorted(maps.Keys(r.CPUByProcess))
		fmt.Fprint(w, "server CPU per checkout by process:")
		for _, n := range names {
			fmt.Fprintf(w, " %s %v", n, (r.CPUByProcess[n] / time.Duration(r.Checkouts)).Round(10*time.Microsecond))
		}
		fmt.Fprintln(w)
	}
	if r.IdleServerCPU > 0 || r.IdleDBCPU > 0 {
		fmt.Fprintf(w, "idle before the run: the processes used %.1f ms of CPU per second, PostgreSQL %.1f ms\n", 1000*r.IdleServerCPU, 1000*r.IdleDBCPU)
	}
	if r.DBProcs > 0 {
		fmt.Fprintf(w, "PostgreSQL (%d processes, machine-wide): CPU %v, %v per checkout; server + PostgreSQL %v per checkout; efficiency with it %.2f\n",
			r.DBProcs, r.DBCPU, r.DBCPUPerCheckout.Round(time.Microsecond), (r.CPUPerCheckout + r.DBCPUPerCheckout).Round(time.Microsecond), r.EfficiencyWithDB)
	}
	fmt.Fprintf(w, "machine: %v busy of %v (%.0f%%); driver %v; other processes %v (%.0f%% of the machine: noise)\n",
		r.MachineCPU, r.MachineCapacity.Round(10*time.Millisecond), 100*r.MachineCPU.Seconds()/r.MachineCapacity.Seconds(),
		r.DriverCPU, r.OtherCPU, 100*r.OtherCPU.Seconds()/r.MachineCapacity.Seconds())
	cp := r.Latency["checkout"]
	fmt.Fprintf(w, "row: | %s | %d | %d | %d | %.1f | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.0f MiB | %.0f%% |\n",
		r.Label, r.Users, r.Checkouts, r.Errors, r.Throughput, ms(cp.P50), ms(cp.P95), ms(cp.P99),
		ms(r.CPUPerCheckout), ms(r.DBCPUPerCheckout), ms(r.FloorPerCheckout), r.Efficiency, r.EfficiencyWithDB, r.ServerPeakMiB,
		100*r.OtherCPU.Seconds()/r.MachineCapacity.Seconds())
	if r.Flood > 0 {
		fmt.Fprintf(w, "flood: %d workers sent %d forged tokens (%.0f/s), %d refused Unauthenticated\n",
			r.Flood, r.Forged, float64(r.Forged)/r.Wall.Seconds(), r.ForgedRefused)
	}
	for _, smp := range r.Samples {
		fmt.Fprintf(w, "sample: at %v, %d checkouts, resident %.1f MiB, %d goroutines\n",
			smp.At.Round(time.Second), smp.Checkouts, float64(smp.RSSKiB)/1024, smp.Goroutines)
	}
	if r.Sizes != nil {
		r.Sizes.print(w, r.Label, r.Checkouts)
	}
}
