package scaleout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/scaleout"
)

// testContext returns the test's context, ending a little before the test
// binary's -timeout would stop it (t.Context() ends only once the test has
// returned). Every wait of these tests is bounded by it rather than by a
// guess of how long the wait takes: a wait for something that never comes
// fails with a message (and the processes' logs), one that is merely slow
// on a busy machine passes.
func testContext(t *testing.T) context.Context {
	d, ok := t.Deadline()
	if !ok {
		return t.Context()
	}
	ctx, cancel := context.WithDeadline(t.Context(), d.Add(-min(30*time.Second, time.Until(d)/10)))
	t.Cleanup(cancel)
	return ctx
}

// cleanupContext is the context of a cleanup, which runs once t.Context()
// has ended: it ends at the test binary's deadline.
func cleanupContext(t *testing.T) (context.Context, context.CancelFunc) {
	if d, ok := t.Deadline(); ok {
		return context.WithDeadline(context.Background(), d)
	}
	return context.WithCancel(context.Background())
}

// build compiles the six service binaries and tokenrelayd into a
// temporary directory, in one go build so that the packages compile in
// parallel, once per test binary: every test of the package shares them.
func build(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			built.err = err
			return
		}
		if built.dir, err = os.MkdirTemp("", "scaleout-bin-"); err != nil {
			built.err = err
			return
		}
		args := []string{"build", "-o", built.dir + string(os.PathSeparator)}
		for _, svc := range []string{"identity", "gateway", "coupons", "points", "payments", "orderprocessing"} {
			args = append(args, "./services/"+svc+"/cmd/"+svc+"d")
		}
		args = append(args, "./services/embedded/cmd/tokenrelayd")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// built holds the binaries of build, removed by TestMain.
var built struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// proc is one started process. Its cmd and done change when it is
// restarted (only by the test's goroutine).
type proc struct {
	name   string
	url    string
	binary string
	args   []string
	cmd    *exec.Cmd
	log    string
	done   chan struct{}
}

// cluster is the scaled-out system, started as scripts/scaleout.sh does
// (or, with pg empty, one tokenrelayd).
type cluster struct {
	t                         *testing.T
	bin, data, pg, prefix     string
	gateway, identity         *proc
	coupons, points, payments *proc
	replicas                  [2]*proc
	mu                        sync.Mutex
	procs                     []*proc
}

func (c *cluster) start(name string, port int, binary string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, url: "http://127.0.0.1:" + strconv.Itoa(port), binary: binary, log: filepath.Join(c.data, name+".log"),
		args: append([]string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-data", filepath.Join(c.data, name)}, args...)}
	c.run(p)
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// run starts p's binary, appending to its log.
func (c *cluster) run(p *proc) {
	c.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.bin, p.binary), p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// kill sends SIGKILL to p (started by this test, by pid) and waits for it
// to exit.
func (c *cluster) kill(p *proc) {
	c.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		c.t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// restart starts an exited p again with the same arguments, on the same
// port and data, and waits until it is healthy.
func (c *cluster) restart(p *proc) {
	c.t.Helper()
	select {
	case <-p.done:
	default:
		c.t.Fatalf("restart %s: still running", p.name)
	}
	c.run(p)
	c.healthy(p)
}

// healthy waits until each of ps answers its health check, however long
// it takes to start, and fails if it exits first.
func (c *cluster) healthy(ps ...*proc) {
	c.t.Helper()
	for _, p := range ps {
		c.waitFor(p, scaleout.WaitHealthy)
	}
}

// keysLoaded waits until each process of ps has loaded issuers peers' key
// sets (scaleout.WaitKeysLoaded), or fails the test.
func (c *cluster) keysLoaded(issuers int, ps ...*proc) {
	c.t.Helper()
	for _, p := range ps {
		c.waitFor(p, func(ctx context.Context, base string) error { return scaleout.WaitKeysLoaded(ctx, base, issuers) })
	}
}

// waitFor waits for p with wait, failing the test if p exits first.
func (c *cluster) waitFor(p *proc, wait func(ctx context.Context, base string) error) {
	c.t.Helper()
	ctx, cancel := context.WithCancelCause(testContext(c.t))
	go func(done <-chan struct{}) {
		select {
		case <-done:
			cancel(fmt.Errorf("%s exited", p.name))
		case <-ctx.Done():
		}
	}(p.done)
	err := wait(ctx, p.url)
	cause := context.Cause(ctx)
	cancel(nil)
	if err != nil {
		c.t.Fatalf("%s: %v (%v)", p.name, err, cause)
	}
}

// stop sends SIGTERM to every process still running, waits for them
// (SIGKILL after 10 s), prints the logs' tails if the test failed, and
// drops the run's schemas.
func (c *cluster) stop() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process must run to exit
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if c.t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			c.t.Logf("--- %s (last lines)\n%s", p.name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	}
	if c.pg == "" {
		return
	}
	ctx, cancel := cleanupContext(c.t)
	defer cancel()
	if _, err := scaleout.DropSchemas(ctx, c.pg, c.prefix); err != nil {
		c.t.Errorf("drop schemas: %v", err)
	}
}

// clusters numbers the clusters of this test binary, for unique schemas.
var clusters atomic.Int64

// startCluster starts identity, coupons, points, payments, two
// orderprocessing replicas and the gateway, as scripts/scaleout.sh does.
func startCluster(t *testing.T, bin, pg string) *cluster {
	c := &cluster{t: t, bin: bin, data: t.TempDir(), pg: pg, prefix: fmt.Sprintf("scaleout_test_%d_%d_%d", time.Now().Unix(), os.Getpid(), clusters.Add(1))}
	t.Cleanup(c.stop)
	ports, err := scaleout.FreePorts(7)
	if err != nil {
		t.Fatal(err)
	}
	url := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }
	gw, id, co, pt, pay, op1, op2 := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	// The domains get both OrderProcessing replicas' JWKS URLs (one shared
	// key set), tried in turn.
	gwJWKS, opJWKS := url(gw)+"/.well-known/jwks.json", url(op1)+"/.well-known/jwks.json,"+url(op2)+"/.well-known/jwks.json"
	routes := filepath.Join(c.data, "routes.json")
	route := func(capability, issuer string, stage, port int) string {
		return fmt.Sprintf(`{"capability": %q, "issuer": %q, "stage": %d, "endpoint": %q, "jwks": %q}`,
			capability, issuer, stage, url(port), url(port)+"/.well-known/jwks.json")
	}
	table := `{"routes": [` + strings.Join([]string{
		route("coupons:redeem", "coupons", 1, co), route("points:spend", "points", 1, pt), route("payments:capture", "payments", 2, pay),
	}, ",") + `]}`
	if err := os.WriteFile(routes, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	// The gateway's Txn-Token Service lets OrderProcessing (either
	// replica: one key set) continue its orders' transactions.
	workloads := filepath.Join(c.data, "workloads.json")
	if err := os.WriteFile(workloads, []byte(fmt.Sprintf(`{"workloads": [{"name": "order-processing", "jwks": %q,
		"subjects": ["*"], "scopes": ["coupons:redeem", "points:spend", "payments:capture"], "continue": true}]}`, opJWKS)), 0o600); err != nil {
		t.Fatal(err)
	}
	store := func(svc string) []string {
		return []string{"-db", pg, "-schema", c.prefix + "_" + svc, "-db-max-conns", "4"}
	}
	peers := []string{"-gateway-jwks", gwJWKS, "-order-processing-jwks", opJWKS}
	// The gateway first (after identity, whose keys it trusts by URL): every
	// other process is ready only once it has loaded the gateway's keys
	// (health.GatewayKeys), and the gateway's own readiness waits for no
	// peer's keys.
	c.identity = c.start("identity", id, "identityd", append(store("identity"), "-issuer", url(id), "-seed-demo-users", "-gateway-jwks", gwJWKS)...)
	c.gateway = c.start("gateway", gw, "gatewayd", "-workloads-file", workloads,
		"-issuer", url(id)+"="+url(id)+"/.well-known/jwks.json",
		"-route", "identity="+url(id), "-route", "coupons="+url(co), "-route", "points="+url(pt),
		"-route", "payments="+url(pay), "-route", "orderprocessing="+url(op1)+","+url(op2))
	c.healthy(c.gateway)
	c.coupons = c.start("coupons", co, "couponsd", append(store("coupons"), peers...)...)
	c.points = c.start("points", pt, "pointsd", append(store("points"), peers...)...)
	c.payments = c.start("payments", pay, "paymentsd", append(store("payments"), peers...)...)
	// The replicas share the key ring and vault keys; the first creates
	// them. A short lease lets the survivor take over a killed replica's
	// sagas quickly.
	shared := append(store("orderprocessing"), "-keys", filepath.Join(c.data, "op-keys"), "-vault", filepath.Join(c.data, "op-vault"),
		"-routes", routes, "-gateway-jwks", gwJWKS, "-txn-token-url", url(gw), "-saga-lease", "3s", "-saga-recover-every", "500ms", "-saga-call-timeout", "3s")
	c.replicas[0] = c.start("order-processing-1", op1, "orderprocessingd", shared...)
	c.healthy(c.replicas[0])
	c.replicas[1] = c.start("order-processing-2", op2, "orderprocessingd", shared...)
	c.healthy(c.identity, c.coupons, c.points, c.payments, c.replicas[1])
	// Ready is not yet able: OrderProcessing and the domains trust each
	// other's keys, which are no readiness check, and the first to start
	// fails its first fetch of the other's (so does the gateway of
	// identity's and OrderProcessing's). Wait until each process has every
	// peer's keys, so that the tests' first requests find them.
	c.keysLoaded(1, c.identity)                      // the gateway's
	c.keysLoaded(2, c.gateway)                       // identity's, OrderProcessing's (Txn-Token Service)
	c.keysLoaded(2, c.coupons, c.points, c.payments) // the gateway's, OrderProcessing's
	c.keysLoaded(4, c.replicas[0], c.replicas[1])    // the gateway's and the three domains'
	return c
}

var placedMetric = regexp.MustCompile(`(?m)^tokenrelay_rpc_requests_total\{code="(\w+)",procedure="/tokenrelay\.orderprocessing\.v1\.OrderProcessingService/PlaceOrder"\} (\d+)$`)

// placed returns the PlaceOrder calls a replica answered, by code, from
// its /metrics.
func placed(t *testing.T, p *proc) map[string]int {
	t.Helper()
	res, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatalf("%s metrics: %v", p.name, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := map[string]int{}
	for _, sm := range placedMetric.FindAllStringSubmatch(string(b), -1) {
		m[sm[1]], _ = strconv.Atoi(sm[2])
	}
	return m
}

func wait(t *testing.T, s *scaleout.Shopper, id string, want orderprocessingv1.OrderStatus) *orderprocessingv1.Order {
	t.Helper()
	o, err := s.Wait(testContext(t), id)
	if err != nil {
		t.Fatalf("order %s: %v", id, err)
	}
	if o.GetStatus() != want {
		t.Fatalf("order %s ended %s, want %s", id, o.GetStatus(), want)
	}
	return o
}

// TestScaleOut runs the scaled-out system as separate processes against
// PostgreSQL and checks complete checkouts through the gateway, the spread
// over both OrderProcessing replicas, concurrent replays through both, and
// the takeover of a killed replica's sagas.
func TestScaleOut(t *testing.T) {
	pg := sqldbtest.PostgresURL(t)
	began := time.Now()
	c := startCluster(t, build(t), pg)
	t.Logf("built and started 7 processes in %v", time.Since(began).Round(time.Millisecond))
	ctx := testContext(t)
	if err := embedded.Seed(ctx, c.gateway.url, filepath.Join(c.data, "seeded")); err != nil {
		t.Fatalf("seed through the gateway: %v", err)
	}

	t.Run("reflection through the gateway", func(t *testing.T) {
		stream := grpcreflect.NewClient(h2c(), c.gateway.url, connect.WithGRPC()).NewStream(ctx)
		defer stream.Close()
		names, err := stream.ListServices()
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 5 || !contains(names, orderprocessingv1connect.OrderProcessingServiceName) || contains(names, "tokenrelay.capability.v1.CapabilityService") {
			t.Fatalf("ListServices = %v, want the five public services", names)
		}
	})

	shopper, err := scaleout.Login(ctx, c.gateway.url, "shopper", identity.DemoShopperPassword)
	if err != nil {
		t.Fatal(err)
	}
	grpcShopper, err := scaleout.Login(ctx, c.gateway.url, "shopper", identity.DemoShopperPassword, connect.WithGRPC())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("checkouts spread over both replicas", func(t *testing.T) {
		for i, s := range []*scaleout.Shopper{shopper, grpcShopper, shopper, grpcShopper} {
			coupon := ""
			if i == 0 {
				coupon = "WELCOME5"
			}
			o, err := s.Checkout(ctx, coupon, 20, scaleout.CardOK)
			if err != nil || o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
				t.Fatalf("checkout %d: %v, %v", i, o.GetStatus(), err)
			}
		}
		o, err := shopper.Checkout(ctx, "", 20, scaleout.CardFailCapture)
		if err != nil || o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED {
			t.Fatalf("failing capture: %v, %v", o.GetStatus(), err)
		}
		for _, st := range o.GetSteps() {
			if st.GetState() != orderprocessingv1.StepState_STEP_STATE_COMPENSATED && st.GetState() != orderprocessingv1.StepState_STEP_STATE_FAILED {
				t.Errorf("failed order: step %s is %s, want compensated", st.GetCapability(), st.GetState())
			}
		}
		if bal, err := shopper.Balance(ctx); err != nil || bal != 1000-4*20 {
			t.Errorf("points balance = %d, %v; want %d (the failed order's points refunded)", bal, err, 1000-4*20)
		}
		one, two := placed(t, c.replicas[0])["ok"], placed(t, c.replicas[1])["ok"]
		if one+two != 5 || one == 0 || two == 0 {
			t.Fatalf("orders placed per replica: %d and %d, want 5 spread over both", one, two)
		}
	})

	t.Run("the saga's calls carry the order's txn", func(t *testing.T) {
		// The card alone, so that the balances the subtests below count
		// on stay as they are: one saga call, the capture.
		o, err := shopper.Checkout(ctx, "", 0, scaleout.CardOK)
		if err != nil || o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
			t.Fatalf("checkout: %v, %v", o.GetStatus(), err)
		}
		// Each line below is written before the answer the order's
		// completion waited for.
		txn := ""
		for _, r := range c.replicas {
			for _, l := range logLines(t, r) {
				if l["msg"] == "order placed" && l["order"] == o.GetId() {
					txn, _ = l["txn"].(string)
				}
			}
		}
		if txn == "" {
			t.Fatal(`no "order placed" line with a txn`)
		}
		for _, d := range []*proc{c.payments} {
			n := 0
			for _, l := range logLines(t, d) {
				if l["msg"] == "exercise" && l["order"] == o.GetId() {
					n++
					if l["txn"] != txn {
						t.Errorf("%s: exercise of %s with txn %v, want %s", d.name, o.GetId(), l["txn"], txn)
					}
				}
			}
			if n == 0 {
				t.Errorf("%s logged no exercise of %s", d.name, o.GetId())
			}
		}
		issued := 0
		for _, l := range logLines(t, c.gateway) {
			if l["msg"] == "transaction token issued" && l["txn"] == txn && l["workload"] == "order-processing" {
				issued++
			}
		}
		if issued < 1 {
			t.Errorf("the gateway's Txn-Token Service issued no token of txn %s", txn)
		}
	})

	t.Run("concurrent replays through both replicas make one order", func(t *testing.T) {
		p, err := shopper.Prepare(ctx, "", 10, scaleout.CardOK)
		if err != nil {
			t.Fatal(err)
		}
		before := [2]map[string]int{placed(t, c.replicas[0]), placed(t, c.replicas[1])}
		const n = 8
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			orders []string
			codes  = map[connect.Code]int{}
		)
		for i := range n {
			wg.Go(func() {
				id, err := shopper.Place(ctx, p, fmt.Sprintf("race-%d", i))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					orders = append(orders, id)
				} else {
					codes[connect.CodeOf(err)]++
				}
			})
		}
		wg.Wait()
		if len(orders) != 1 || codes[connect.CodeAlreadyExists]+codes[connect.CodeFailedPrecondition] != n-1 {
			t.Fatalf("%d orders %v and refusals %v, want exactly one order and already_exists/failed_precondition for the rest", len(orders), orders, codes)
		}
		for i, r := range c.replicas {
			after := placed(t, r)
			total := 0
			for code, v := range after {
				total += v - before[i][code]
			}
			if total == 0 {
				t.Errorf("replica %d got none of the concurrent PlaceOrder calls", i+1)
			}
		}
		wait(t, shopper, orders[0], orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED)
	})

	t.Run("a killed replica's sagas finish on the other", func(t *testing.T) {
		// Confirm four checkouts, then freeze Payments so that every saga
		// stops at the capture, place them (two per replica), kill
		// replica 2 and thaw Payments: replica 1 must finish all four.
		var prepared []*scaleout.Prepared
		for range 4 {
			p, err := shopper.Prepare(ctx, "", 5, scaleout.CardOK)
			if err != nil {
				t.Fatal(err)
			}
			prepared = append(prepared, p)
		}
		before := placed(t, c.replicas[1])["ok"]
		if err := c.payments.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		thawed := false
		thaw := func() {
			if !thawed {
				thawed = true
				_ = c.payments.cmd.Process.Signal(syscall.SIGCONT)
			}
		}
		defer thaw()
		var ids []string
		for _, p := range prepared {
			id, err := shopper.Place(ctx, p, "kill-"+p.CheckoutID)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if got := placed(t, c.replicas[1])["ok"] - before; got == 0 {
			t.Fatal("replica 2 placed none of the orders")
		}
		// Every saga reaches the frozen capture (polled: each state is
		// there to be seen until Payments is thawed).
		for _, id := range ids {
			for {
				o, err := shopper.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if o.GetStatus() == orderprocessingv1.OrderStatus_ORDER_STATUS_IN_PROGRESS && capturing(o) {
					break
				}
				if o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_IN_PROGRESS && o.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_PENDING {
					t.Fatalf("order %s is %s before the kill, want in progress at the capture", id, o.GetStatus())
				}
				select {
				case <-ctx.Done():
					t.Fatalf("order %s never reached the capture: %v", id, ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		if err := c.replicas[1].cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-c.replicas[1].done
		thaw()
		for _, id := range ids {
			o := wait(t, shopper, id, orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED)
			for _, st := range o.GetSteps() {
				if st.GetState() != orderprocessingv1.StepState_STEP_STATE_APPLIED {
					t.Errorf("order %s: step %s is %s, want applied", id, st.GetCapability(), st.GetState())
				}
			}
		}
		if bal, err := shopper.Balance(ctx); err != nil || bal != 1000-4*20-10-4*5 {
			t.Errorf("points balance = %d, %v; want %d: every spend applied exactly once", bal, err, 1000-4*20-10-4*5)
		}
	})
	t.Logf("scale-out test ran in %v", time.Since(began).Round(time.Millisecond))
}

// capturing reports whether the order's payment step has started.
func capturing(o *orderprocessingv1.Order) bool {
	for _, st := range o.GetSteps() {
		if st.GetCapability() == "payments:capture" {
			return st.GetState() == orderprocessingv1.StepState_STEP_STATE_EXERCISING
		}
	}
	return false
}

func contains[T ~string](list []T, s string) bool {
	for _, v := range list {
		if string(v) == s {
			return true
		}
	}
	return false
}

func h2c() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// logLines returns p's JSON log lines so far.
func logLines(t *testing.T, p *proc) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for line := range strings.SplitSeq(string(b), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}
