package scaleout_test

// The reliability suite (issue 10): processes killed, frozen and restarted
// in the middle of sagas, concurrent spends across replicas, and replays,
// each checked against the ledgers of every service read directly from
// their databases (ledgers_test.go). `make test` runs a few randomized
// trials of each; `make reliability` runs many (TOKENRELAY_RELIABILITY=long)
// plus the PostgreSQL restart. RELIABILITY.md has the figures.
//
// Environment:
//
//	TOKENRELAY_RELIABILITY=long        many trials (make reliability)
//	TOKENRELAY_RELIABILITY_TRIALS=N    exactly N trials of each randomized test
//	TOKENRELAY_RELIABILITY_SEED=N      replay a run: every test logs its seed
//	TOKENRELAY_RELIABILITY_PG_RESTART=1  run TestPostgresRestartUnderLoad,
//	                                   which restarts the shared PostgreSQL

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
	"github.com/tokenrelay/tokenrelay/services/scaleout"
)

// trials is how many randomized trials a test runs: short in `make test`,
// long with TOKENRELAY_RELIABILITY=long, or TOKENRELAY_RELIABILITY_TRIALS.
func trials(t *testing.T, short, long int) int {
	t.Helper()
	if v := os.Getenv("TOKENRELAY_RELIABILITY_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TOKENRELAY_RELIABILITY_TRIALS=%q: want a positive number", v)
		}
		return n
	}
	if os.Getenv("TOKENRELAY_RELIABILITY") == "long" {
		return long
	}
	return short
}

// seeded returns the test's random source and logs its seed, from
// TOKENRELAY_RELIABILITY_SEED or the clock. Use it from the test's
// goroutine only.
func seeded(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TOKENRELAY_RELIABILITY_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("TOKENRELAY_RELIABILITY_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (replay with TOKENRELAY_RELIABILITY_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x5eed))
}

// planned is one order of a trial.
type planned struct {
	prep *scaleout.Prepared
	key  string
	want orderprocessingv1.OrderStatus // what it ends as when nothing fails
	id   string
	err  error
}

// prepareMix confirms n checkouts of a random mix: a fresh coupon (granted
// by admin) or none, some points or none, the card that works or the one
// failing at capture.
func prepareMix(t *testing.T, rng *rand.Rand, shopper, admin *scaleout.Shopper, n int, tag string) []*planned {
	t.Helper()
	ctx := testContext(t)
	out := make([]*planned, 0, n)
	for i := range n {
		coupon := ""
		if rng.IntN(10) < 4 {
			coupon = strings.ToUpper(fmt.Sprintf("R%s-%d", tag, i))
			if err := admin.GrantCoupon(ctx, shopper.UserID, coupon, 300); err != nil {
				t.Fatal(err)
			}
		}
		var points int64
		if rng.IntN(10) < 6 {
			points = 1 + rng.Int64N(200)
		}
		card, want := scaleout.CardOK, orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED
		if rng.IntN(4) == 0 {
			card, want = scaleout.CardFailCapture, orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED
		}
		p, err := shopper.Prepare(ctx, coupon, points, card)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &planned{prep: p, key: "rel-" + p.CheckoutID, want: want})
	}
	return out
}

// retryable reports whether a PlaceOrder error may be retried with the same
// key: the call may not have reached a replica, or its replica died (a
// connection reset mid-response comes back as canceled or unknown; place
// stops when its own context is done), or a dependency (the database) is
// down, which the services answer as unavailable. Internal is not
// retryable, as for any client: a service that answers internal under a
// fault has failed the test (issue 15).
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeAborted, connect.CodeCanceled:
		return true
	}
	return false
}

// place places p as a client would: retrying with the same idempotency key
// while the system is unavailable, until ctx (the test's) ends. It returns
// the number of attempts.
func place(ctx context.Context, s *scaleout.Shopper, p *planned) int {
	for attempt := 1; ; attempt++ {
		p.id, p.err = s.Place(ctx, p.prep, p.key)
		if p.err == nil || !retryable(p.err) || ctx.Err() != nil {
			return attempt
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// placeAll places every order concurrently, the i-th after delays[i] when
// given, and returns a channel closed when all are placed (or refused),
// and the number of retried placements.
func placeAll(ctx context.Context, s *scaleout.Shopper, orders []*planned, delays ...time.Duration) (<-chan struct{}, *retries) {
	done := make(chan struct{})
	r := &retries{}
	var wg sync.WaitGroup
	for i, p := range orders {
		wg.Go(func() {
			if i < len(delays) {
				time.Sleep(delays[i])
			}
			if n := place(ctx, s, p); n > 1 {
				r.add(1)
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done, r
}

type retries struct {
	mu sync.Mutex
	n  int
}

func (r *retries) add(n int) { r.mu.Lock(); r.n += n; r.mu.Unlock() }
func (r *retries) get() int  { r.mu.Lock(); defer r.mu.Unlock(); return r.n }

// settle waits until every order is placed and final, and counts outcomes
// against what each would be without faults.
func settle(t *testing.T, s *scaleout.Shopper, placed <-chan struct{}, orders []*planned, outcomes histogram) {
	t.Helper()
	<-placed
	ctx := testContext(t)
	for _, p := range orders {
		if p.err != nil {
			t.Fatalf("place order of checkout %s: %v", p.prep.CheckoutID, p.err)
		}
		o, err := s.Wait(ctx, p.id)
		if err != nil {
			t.Fatalf("order %s: %v", p.id, err)
		}
		verdict := "as without faults"
		if o.GetStatus() != p.want {
			verdict = "compensated instead of completed"
			if o.GetStatus() == orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
				t.Errorf("order %s completed with a card that fails at capture", p.id)
			}
		}
		outcomes[strings.TrimPrefix(o.GetStatus().String(), "ORDER_STATUS_")+", "+verdict]++
	}
}

// snapshot records where the sagas of a trial's orders stood at a kill, for
// the coverage histogram (read right after the kill).
func snapshot(t *testing.T, l *ledgers, orders []*planned, at histogram) {
	t.Helper()
	ctx := testContext(t)
	all, err := l.orders(ctx)
	if err != nil {
		t.Logf("snapshot: %v", err)
		return
	}
	byCheckout := map[string]*order{}
	// Order ids are known to the test only once placed; match the rest
	// by checkout through the orders table's checkout_id.
	err = query(ctx, l.op, `SELECT id, checkout_id FROM `+l.op.table("orders"), func(r *sql.Rows) error {
		var id, co string
		if err := r.Scan(&id, &co); err != nil {
			return err
		}
		byCheckout[co] = all[id]
		return nil
	})
	if err != nil {
		t.Logf("snapshot: %v", err)
		return
	}
	for _, p := range orders {
		at[where(byCheckout[p.prep.CheckoutID])]++
	}
}

// TestCrashOrderProcessingScaledOut SIGKILLs OrderProcessing replicas at
// random points of their sagas on PostgreSQL, restarts them, and checks
// every ledger. Each trial confirms 2 to 6 orders of a random mix, then
// either freezes a random domain (SIGSTOP) so that the sagas stop at its
// call and kills there after a random pause, or kills after a random
// delay from placement; it kills replica 1, replica 2 or both.
func TestCrashOrderProcessingScaledOut(t *testing.T) {
	pg := sqldbtest.PostgresURL(t)
	n := trials(t, 3, 40)
	rng := seeded(t)
	c := startCluster(t, build(t), pg)
	ctx := testContext(t)
	if err := embedded.Seed(ctx, c.gateway.url, filepath.Join(c.data, "seeded")); err != nil {
		t.Fatal(err)
	}
	shopper, admin := logins(t, c.gateway.url)
	if _, err := admin.GrantPoints(ctx, shopper.UserID, 1_000_000, "reliability"); err != nil {
		t.Fatal(err)
	}
	l := pgLedgers(t, c)
	at, outcomes := histogram{}, histogram{}
	killed, retried := 0, 0
	began := time.Now()
	for trial := range n {
		orders := prepareMix(t, rng, shopper, admin, 2+rng.IntN(5), fmt.Sprintf("k%d", trial))
		victims := [][]int{{0}, {1}, {0, 1}}[rng.IntN(3)]
		domains := []*proc{c.coupons, c.points, c.payments}
		var frozen *proc
		if rng.IntN(2) == 0 {
			frozen = domains[rng.IntN(3)]
		}
		_, end, err := progress(ctx, l, orders)
		if err != nil {
			t.Fatal(err)
		}
		target, pause := rng.IntN(end), time.Duration(rng.IntN(100))*time.Millisecond
		if frozen != nil {
			signal(t, frozen, syscall.SIGSTOP)
		}
		placed, r := placeAll(ctx, shopper, orders)
		var how string
		if frozen != nil {
			// Kill once a saga waits on the frozen domain (at once when no
			// order of the trial uses it), after a pause: the pause is
			// part of the fault, the outcome must hold whatever it is.
			waitCalling(t, l, orders, frozen.name, placed)
			time.Sleep(pause)
			how = fmt.Sprintf("freeze %s, kill %v at its call after %v", frozen.name, victims, pause)
		} else {
			reached := killAt(t, l, orders, target, placed)
			how = fmt.Sprintf("kill %v at progress %d of %d (target %d)", victims, reached, end, target)
		}
		for _, v := range victims {
			c.kill(c.replicas[v])
			killed++
		}
		snapshot(t, l, orders, at)
		if frozen != nil {
			signal(t, frozen, syscall.SIGCONT)
		}
		for _, v := range victims {
			c.restart(c.replicas[v])
		}
		settle(t, shopper, placed, orders, outcomes)
		retried += r.get()
		sum := checkInvariants(t, l)
		t.Logf("trial %d: %d orders, %s; ledgers: %v", trial+1, len(orders), how, sum)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d trials, %d replica kills, %d placements retried, in %v\nwhere the sagas stood at the kill:%v\noutcomes:%v",
		n, killed, retried, time.Since(began).Round(time.Second), at, outcomes)
}

// TestCrashEmbedded SIGKILLs bin/tokenrelayd (the embedded default, SQLite)
// at a random point after placing a random mix of orders, restarts it on
// the same data directory, and checks every ledger in its SQLite files. The
// saga's lease (15 s in the embedded default) must expire before the
// restarted process resumes the orders, so each trial takes about 20 s.
func TestCrashEmbedded(t *testing.T) {
	n := trials(t, 2, 12)
	rng := seeded(t)
	c := &cluster{t: t, bin: build(t), data: t.TempDir()}
	t.Cleanup(c.stop)
	ports, err := scaleout.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	c.gateway = c.start("tokenrelayd", ports[0], "tokenrelayd", "-web", "")
	c.healthy(c.gateway)
	ctx := testContext(t)
	shopper, admin := logins(t, c.gateway.url)
	for !shopper.HasCard(scaleout.CardFailCapture) {
		// tokenrelayd seeds the demo data after it starts serving: poll
		// for the card it adds.
		select {
		case <-ctx.Done():
			t.Fatalf("tokenrelayd did not seed the demo data: %v", ctx.Err())
		case <-c.gateway.done:
			t.Fatal("tokenrelayd exited")
		case <-time.After(200 * time.Millisecond):
		}
		shopper, admin = logins(t, c.gateway.url)
	}
	if _, err := admin.GrantPoints(ctx, shopper.UserID, 1_000_000, "reliability"); err != nil {
		t.Fatal(err)
	}
	l := sqliteLedgers(t, filepath.Join(c.data, "tokenrelayd"))
	at, outcomes := histogram{}, histogram{}
	began := time.Now()
	for trial := range n {
		orders := prepareMix(t, rng, shopper, admin, 2+rng.IntN(5), fmt.Sprintf("e%d", trial))
		// A saga takes a few milliseconds here: kill once they have made a
		// random part of their progress.
		_, end, err := progress(ctx, l, orders)
		if err != nil {
			t.Fatal(err)
		}
		target := rng.IntN(end)
		placed, _ := placeAll(ctx, shopper, orders)
		reached := killAt(t, l, orders, target, placed)
		c.kill(c.gateway)
		snapshot(t, l, orders, at)
		c.restart(c.gateway)
		settle(t, shopper, placed, orders, outcomes)
		sum := checkInvariants(t, l)
		t.Logf("trial %d: %d orders, killed at progress %d of %d (target %d); ledgers: %v", trial+1, len(orders), reached, end, target, sum)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d trials in %v\nwhere the sagas stood at the kill:%v\noutcomes:%v", n, time.Since(began).Round(time.Second), at, outcomes)
}

// TestDomainDownScaledOut takes a domain service down in the middle of
// sagas: frozen (SIGSTOP) or killed (SIGKILL) once a saga calls it, for a
// random 0.2 to 6 s, then thawed or restarted. Orders complete (the domain
// came back within the retries) or compensate (compensation waits for it),
// and every ledger stays consistent.
func TestDomainDownScaledOut(t *testing.T) {
	pg := sqldbtest.PostgresURL(t)
	n := trials(t, 3, 30)
	rng := seeded(t)
	c := startCluster(t, build(t), pg)
	ctx := testContext(t)
	if err := embedded.Seed(ctx, c.gateway.url, filepath.Join(c.data, "seeded")); err != nil {
		t.Fatal(err)
	}
	shopper, admin := logins(t, c.gateway.url)
	if _, err := admin.GrantPoints(ctx, shopper.UserID, 1_000_000, "reliability"); err != nil {
		t.Fatal(err)
	}
	l := pgLedgers(t, c)
	outcomes := histogram{}
	began := time.Now()
	for trial := range n {
		orders := prepareMix(t, rng, shopper, admin, 2+rng.IntN(4), fmt.Sprintf("d%d", trial))
		d := []*proc{c.coupons, c.points, c.payments}[rng.IntN(3)]
		kill := rng.IntN(2) == 0
		down := 200*time.Millisecond + time.Duration(rng.IntN(5800))*time.Millisecond
		signal(t, d, syscall.SIGSTOP)
		placed, _ := placeAll(ctx, shopper, orders)
		waitCalling(t, l, orders, d.name, placed)
		how := fmt.Sprintf("%s frozen for %v", d.name, down.Round(time.Millisecond))
		if kill {
			c.kill(d) // a stopped process dies of SIGKILL all the same
			how = fmt.Sprintf("%s killed for %v", d.name, down.Round(time.Millisecond))
		}
		time.Sleep(down) // the fault itself: the outcome must hold however long it lasts
		if kill {
			c.restart(d)
		} else {
			signal(t, d, syscall.SIGCONT)
		}
		before := histogram{}
		settle(t, shopper, placed, orders, before)
		for k, v := range before {
			outcomes[k] += v
		}
		sum := checkInvariants(t, l)
		t.Logf("trial %d: %d orders, %s: %v; ledgers: %v", trial+1, len(orders), how, before, sum)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d trials in %v\noutcomes:%v", n, time.Since(began).Round(time.Second), outcomes)
}

// waitCalling waits until a saga of orders has a step of issuer in
// EXERCISING or COMPENSATING (it is calling, or about to call, the
// issuer). With issuer frozen such a step stays there, so the wait ends
// however slow the machine; it ends at once when no order of the trial
// uses issuer, and once placed is closed if one that does was not placed
// (settle reports it).
func waitCalling(t *testing.T, l *ledgers, orders []*planned, issuer string, placed <-chan struct{}) {
	t.Helper()
	ctx := testContext(t)
	checkouts := map[string]bool{}
	for _, p := range orders {
		if uses(t, p, issuer) {
			checkouts[p.prep.CheckoutID] = true
		}
	}
	if len(checkouts) == 0 {
		return
	}
	for {
		calling := false
		err := query(ctx, l.op, `SELECT o.checkout_id, s.state FROM `+l.op.table("steps")+` s JOIN `+l.op.table("orders")+` o ON o.id = s.order_id WHERE s.issuer = '`+issuer+`'`,
			func(r *sql.Rows) error {
				var co string
				var state int64
				if err := r.Scan(&co, &state); err != nil {
					return err
				}
				calling = calling || checkouts[co] && (state == stepExercising || state == stepCompensating)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if calling || unplaced(placed, orders) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no saga of the trial called %s: %v", issuer, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// uses reports whether p has a confirmation token of issuer (its iss, not
// verified: the test's own token).
func uses(t *testing.T, p *planned, issuer string) bool {
	t.Helper()
	for _, raw := range p.prep.Tokens {
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("confirmation token of checkout %s is not a JWS", p.prep.CheckoutID)
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Issuer string `json:"iss"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		if c.Issuer == issuer {
			return true
		}
	}
	return false
}

// unplaced reports whether every placement is over (placed is closed) and
// one of them failed: its saga will never progress.
func unplaced(placed <-chan struct{}, orders []*planned) bool {
	select {
	case <-placed:
	default:
		return false
	}
	for _, p := range orders {
		if p.err != nil {
			return true
		}
	}
	return false
}

// progress is how far the sagas of orders have gone: one for each order
// stored, one for each step that left PENDING, one more for each step that
// reached APPLIED, FAILED or beyond. A trial of n orders with s steps in
// all reaches n + 2s when every saga is over.
func progress(ctx context.Context, l *ledgers, orders []*planned) (now, end int, err error) {
	checkouts, stored := map[string]bool{}, map[string]bool{}
	for _, p := range orders {
		checkouts[p.prep.CheckoutID] = true
		end += 1 + 2*len(p.prep.Tokens)
	}
	err = query(ctx, l.op, `SELECT o.checkout_id, s.state FROM `+l.op.table("steps")+` s JOIN `+l.op.table("orders")+` o ON o.id = s.order_id`,
		func(r *sql.Rows) error {
			var co string
			var state int64
			if err := r.Scan(&co, &state); err != nil || !checkouts[co] {
				return err
			}
			if !stored[co] {
				stored[co] = true
				now++
			}
			switch {
			case state == stepExercising:
				now++
			case state > stepExercising:
				now += 2
			}
			return nil
		})
	return now, end, err
}

// killAt waits until the sagas of orders have made the random progress
// target (see progress; polled every millisecond), or until placed is
// closed with an order not placed (settle reports it), and returns what
// they had made when it returned.
func killAt(t *testing.T, l *ledgers, orders []*planned, target int, placed <-chan struct{}) int {
	t.Helper()
	ctx := testContext(t)
	for {
		now, _, err := progress(ctx, l, orders)
		if err != nil {
			t.Fatal(err)
		}
		if now >= target || unplaced(placed, orders) {
			return now
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the sagas stopped at progress %d, short of %d: %v", now, target, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

func signal(t *testing.T, p *proc, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
}

// logins logs the demo shopper and admin in through the gateway at base.
func logins(t *testing.T, base string) (shopper, admin *scaleout.Shopper) {
	t.Helper()
	var err error
	ctx := testContext(t)
	if shopper, err = scaleout.Login(ctx, base, "shopper", identity.DemoShopperPassword); err != nil {
		t.Fatal(err)
	}
	if admin, err = scaleout.Login(ctx, base, "admin", identity.DemoAdminPassword); err != nil {
		t.Fatal(err)
	}
	return shopper, admin
}
