package scaleout_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
)

// TestPostgresRestartUnderLoad restarts the PostgreSQL server while
// checkouts are being placed and their sagas run on the scaled-out
// system: every order must end COMPLETED or FAILED with every ledger
// consistent, no process may die of it, and checkouts work again after.
//
// It restarts the shared server (pg_ctlcluster --skip-systemctl-redirect
// VERSION NAME restart, TOKENRELAY_PG_CLUSTER, default "15 main"), which
// cuts every other client's connections, so it runs only when
// TOKENRELAY_RELIABILITY_PG_RESTART=1: `make reliability` sets it, `make
// test` does not (there other packages' PostgreSQL tests run at the same
// time). It always leaves the server running.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if os.Getenv("TOKENRELAY_RELIABILITY_PG_RESTART") != "1" {
		t.Skip("restarts the shared PostgreSQL server: only with TOKENRELAY_RELIABILITY_PG_RESTART=1 (make reliability)")
	}
	pg := sqldbtest.PostgresURL(t)
	cluster := strings.Fields(os.Getenv("TOKENRELAY_PG_CLUSTER"))
	if len(cluster) == 0 {
		cluster = []string{"15", "main"}
	}
	if len(cluster) != 2 {
		t.Fatalf("TOKENRELAY_PG_CLUSTER=%q: want VERSION NAME", os.Getenv("TOKENRELAY_PG_CLUSTER"))
	}
	pgctl := func(action string) error {
		out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", cluster[0], cluster[1], action).CombinedOutput()
		if err != nil {
			t.Logf("pg_ctlcluster %s: %v\n%s", action, err, out)
		}
		return err
	}
	t.Cleanup(func() {
		if pgctl("status") != nil {
			_ = pgctl("start")
		}
		ctx, cancel := cleanupContext(t)
		defer cancel()
		if err := waitPostgres(ctx, pg); err != nil {
			t.Errorf("PostgreSQL is not back: %v", err)
		}
	})
	n := trials(t, 2, 5)
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
	for trial := range n {
		orders := prepareMix(t, rng, shopper, admin, 8+rng.IntN(9), "pg"+string(rune('a'+trial)))
		_, end, err := progress(ctx, l, orders)
		if err != nil {
			t.Fatal(err)
		}
		// Half the orders are placed at once, the others spread over the
		// next 4 s, so that placements arrive before, during and after the
		// restart, which starts at a random progress of the first half.
		target := rng.IntN(end / 4)
		delays := make([]time.Duration, len(orders))
		for i := len(orders) / 2; i < len(orders); i++ {
			// A schedule, not a wait: the outcome must hold whenever
			// each placement arrives.
			delays[i] = time.Duration(rng.IntN(4000)) * time.Millisecond
		}
		placed, r := placeAll(ctx, shopper, orders, delays...)
		reached := killAt(t, l, orders, target, placed)
		began := time.Now()
		if err := pgctl("restart"); err != nil {
			t.Fatal(err)
		}
		restarted := time.Since(began)
		if err := waitPostgres(ctx, pg); err != nil {
			t.Fatal(err)
		}
		trialOutcomes := histogram{}
		settle(t, shopper, placed, orders, trialOutcomes)
		for k, v := range trialOutcomes {
			outcomes[k] += v
		}
		// The system serves new checkouts again.
		for range 2 {
			if o, err := shopper.Checkout(ctx, "", 5, "4242"); err != nil || !isCompleted(o.GetStatus().String()) {
				t.Fatalf("checkout after the restart: %v, %v", o.GetStatus(), err)
			}
		}
		sum := checkInvariants(t, l)
		for _, p := range c.procs {
			select {
			case <-p.done:
				t.Errorf("%s exited with PostgreSQL restarted", p.name)
			default:
			}
		}
		t.Logf("trial %d: %d orders, restart (%v) at saga progress %d of %d, %d placements retried: %v; ledgers: %v",
			trial+1, len(orders), restarted.Round(time.Millisecond), reached, end, r.get(), trialOutcomes, sum)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d restarts; outcomes:%v", n, outcomes)
}

func isCompleted(status string) bool { return status == "ORDER_STATUS_COMPLETED" }

// waitPostgres waits until the database at url answers, or ctx ends.
func waitPostgres(ctx context.Context, url string) error {
	for {
		db, err := sqldb.Open(ctx, url, sqldb.WithMaxOpenConns(1))
		if err == nil {
			err = db.SQL().PingContext(ctx)
			_ = db.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
