package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing"
)

// migrateOrderProcessing creates OrderProcessing's tables in db, as the
// service does at start.
func migrateOrderProcessing(t *testing.T, db *sqldb.DB) {
	t.Helper()
	ring := func() *keys.Ring {
		r, err := keys.NewRing()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	vk, err := vault.New(map[uint32][]byte{1: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := orderprocessing.New(t.Context(), orderprocessing.Config{
		DB: db, Keys: ring(), Vault: vk, Gateway: capability.Peer{Issuer: "gateway", Keys: ring()}, TrustDomain: "tokenrelay",
		Routes: []orderprocessing.Route{
			{Capability: "coupons:redeem", Issuer: "coupons", Stage: 1, Endpoint: "http://127.0.0.1:1"},
			{Capability: "payments:capture", Issuer: "payments", Stage: 2, Endpoint: "http://127.0.0.1:1"},
		},
		IssuerKeys: map[string]keys.Source{"coupons": ring(), "payments": ring()},
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
}

// Wire values of the order statuses and step states the fixture writes and
// reads (orderprocessing.v1.OrderStatus, StepState).
const (
	statusCompensating  = 3
	statusFailed        = 5
	statusNeedsOperator = 6
	stepCompensating    = 5
	stepCompensated     = 6
	stepRefused         = 7
	stepResolved        = 8
)

// insertOrder stores an order of user in status, with a coupons step in
// couponState (last error answer) and a compensated payment step, placed
// age ago and last changed stuckFor ago, as the saga leaves one.
func insertOrder(t *testing.T, db *sqldb.DB, id, user string, status, couponState int, answer, reason string, age, stuckFor time.Duration) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	created, updated := now.Add(-age), now.Add(-stuckFor)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO checkouts (id, user_id, lines, total_minor, currency, status, order_id, idempotency_key, created_at, expires_at)
			VALUES ($1, $2, '[]', 1000, 'EUR', 2, $3, '', $4, $4)`, []any{"op_" + id, user, id, created}},
		{`INSERT INTO orders (id, checkout_id, user_id, lines, total_minor, currency, status, failure_reason, idempotency_key,
			version, created_at, updated_at, lease_until) VALUES ($1, $2, $3, '[]', 1000, 'EUR', $4, $5, $1, 7, $6, $7, $8)`,
			[]any{id, "op_" + id, user, status, reason, created, updated, time.Unix(0, 0).UTC()}},
		{`INSERT INTO steps (order_id, capability, issuer, stage, state, settlement_minor, currency, jti, expires_at, sealed_token, attempts, last_error)
			VALUES ($1, 'coupons:redeem', 'coupons', 1, $2, 200, 'EUR', $3, $4, 'v1.x', 1, $5)`,
			[]any{id, couponState, "jti-c-" + id, created, answer}},
		{`INSERT INTO steps (order_id, capability, issuer, stage, state, settlement_minor, currency, jti, expires_at, sealed_token, attempts)
			VALUES ($1, 'payments:capture', 'payments', 2, $2, 800, 'EUR', $3, $4, 'v1.x', 1)`,
			[]any{id, stepCompensated, "jti-p-" + id, created}},
	} {
		if _, err := db.SQL().ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("insert order %s: %v", id, err)
		}
	}
}

// stored reads an order's status, operator note and lease owner, and its
// coupons step's state.
func stored(t *testing.T, db *sqldb.DB, id string) (status int, note, leaseOwner string, couponState int) {
	t.Helper()
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT o.status, o.operator_note, o.lease_owner, s.state
		FROM orders o JOIN steps s ON s.order_id = o.id AND s.capability = 'coupons:redeem' WHERE o.id = $1`, id).
		Scan(&status, &note, &leaseOwner, &couponState); err != nil {
		t.Fatal(err)
	}
	return
}

type stuckJSON struct {
	Orders []struct {
		ID            string `json:"id"`
		UserID        string `json:"user_id"`
		Status        string `json:"status"`
		FailureReason string `json:"failure_reason"`
		AgeSeconds    int64  `json:"age_seconds"`
		Steps         []struct {
			Capability string `json:"capability"`
			State      string `json:"state"`
			LastError  string `json:"last_error"`
		} `json:"steps"`
	} `json:"orders"`
}

// TestOrdersCommands (issue 15, item 4) runs orders stuck, retry and
// resolve against OrderProcessing's database on SQLite (the embedded
// layout, --data) and on PostgreSQL (--postgres-url and --schema).
func TestOrdersCommands(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) (*sqldb.DB, []string){
		"sqlite": func(t *testing.T) (*sqldb.DB, []string) {
			data := t.TempDir()
			db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(data, orderprocessing.Name+".db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db, []string{"--data", data}
		},
		"postgres": func(t *testing.T) (*sqldb.DB, []string) {
			db := sqldbtest.Postgres(t)
			var schema string
			if err := db.SQL().QueryRowContext(t.Context(), `SELECT current_schema()`).Scan(&schema); err != nil {
				t.Fatal(err)
			}
			return db, []string{"--postgres-url", sqldbtest.PostgresURL(t), "--schema", schema}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db, where := open(t)
			migrateOrderProcessing(t, db)
			cmd := func(args ...string) []string { return append(args, where...) }

			out, errOut, code := runCmd(t, "", cmd("orders", "stuck")...)
			if code != exitOK || !strings.Contains(out, "No order needs an operator.") {
				t.Fatalf("stuck on an empty store: exit %d\n%s%s", code, out, errOut)
			}

			const answer = "already_exists: exercised for another order"
			const reason = "payments:capture refused: failed_precondition: card declined; compensation refused by coupons:redeem (" + answer + ")"
			insertOrder(t, db, "ord_old", "usr_ann", statusNeedsOperator, stepRefused, answer, reason, 2*time.Hour, 5*time.Minute)
			insertOrder(t, db, "ord_done", "usr_ann", statusFailed, stepCompensated, "", "declined", 3*time.Hour, time.Hour)
			insertOrder(t, db, "ord_new", "usr_bob", statusNeedsOperator, stepRefused, answer, reason, time.Hour, time.Minute)

			out, errOut, code = runCmd(t, "", cmd("orders", "stuck")...)
			if code != exitOK {
				t.Fatalf("stuck: exit %d\n%s%s", code, out, errOut)
			}
			for _, want := range []string{"ORDER", "ord_old", "usr_ann", "2h", "5m", "coupons:redeem", answer, "ord_new", "usr_bob", reason,
				"2 order(s) need an operator", "tokenrelay orders retry", "tokenrelay orders resolve"} {
				if !strings.Contains(out, want) {
					t.Errorf("stuck output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "ord_done") || strings.Index(out, "ord_old") > strings.Index(out, "ord_new") {
				t.Errorf("stuck lists a FAILED order, or not oldest first:\n%s", out)
			}
			var list stuckJSON
			runJSON(t, &list, cmd("orders", "stuck")...)
			if len(list.Orders) != 2 || list.Orders[0].ID != "ord_old" || list.Orders[1].ID != "ord_new" {
				t.Fatalf("stuck --json: %+v", list)
			}
			if o := list.Orders[0]; o.UserID != "usr_ann" || o.Status != "NEEDS_OPERATOR" || o.FailureReason != reason || o.AgeSeconds < 7200 ||
				len(o.Steps) != 1 || o.Steps[0].Capability != "coupons:redeem" || o.Steps[0].State != "COMPENSATION_REFUSED" || o.Steps[0].LastError != answer {
				t.Fatalf("stuck --json, first order: %+v", o)
			}
			runJSON(t, &list, cmd("orders", "stuck", "--limit", "1")...)
			if len(list.Orders) != 1 || list.Orders[0].ID != "ord_old" {
				t.Fatalf("stuck --limit 1: %+v", list)
			}

			// retry: the order and its refused step back to COMPENSATING, the
			// lease free, the reason the one the saga compensated for.
			out, errOut, code = runCmd(t, "", cmd("orders", "retry", "ord_old")...)
			if code != exitOK || !strings.Contains(out, "Order ord_old is COMPENSATING again; step coupons:redeem back to COMPENSATING.") {
				t.Fatalf("retry: exit %d\n%s%s", code, out, errOut)
			}
			if status, _, owner, coupon := stored(t, db, "ord_old"); status != statusCompensating || coupon != stepCompensating || owner != "" {
				t.Fatalf("after retry: status %d, coupons step %d, lease owner %q", status, coupon, owner)
			}
			var reasonNow string
			if err := db.SQL().QueryRowContext(t.Context(), `SELECT failure_reason FROM orders WHERE id = 'ord_old'`).Scan(&reasonNow); err != nil ||
				reasonNow != "payments:capture refused: failed_precondition: card declined" {
				t.Fatalf("failure reason after retry: %q, %v", reasonNow, err)
			}
			runJSON(t, &list, cmd("orders", "stuck")...)
			if len(list.Orders) != 1 || list.Orders[0].ID != "ord_new" {
				t.Fatalf("stuck after retry: %+v", list)
			}

			// resolve: the note is required; then the step RESOLVED, the
			// order FAILED, the note kept.
			if out, errOut, code = runCmd(t, "", cmd("orders", "resolve", "ord_new")...); code != exitUsage || !strings.Contains(errOut, "--note is required") {
				t.Fatalf("resolve without --note: exit %d\n%s%s", code, out, errOut)
			}
			const note = "coupon re-issued by hand, OPS-7"
			var resolved struct {
				ID           string `json:"id"`
				Status       string `json:"status"`
				OperatorNote string `json:"operator_note"`
				Steps        []struct {
					State string `json:"state"`
				} `json:"steps"`
			}
			runJSON(t, &resolved, cmd("orders", "resolve", "ord_new", "--note", note)...)
			if resolved.ID != "ord_new" || resolved.Status != "FAILED" || resolved.OperatorNote != note || len(resolved.Steps) != 1 || resolved.Steps[0].State != "RESOLVED" {
				t.Fatalf("resolve --json: %+v", resolved)
			}
			if status, gotNote, _, coupon := stored(t, db, "ord_new"); status != statusFailed || coupon != stepResolved || gotNote != note {
				t.Fatalf("after resolve: status %d, coupons step %d, note %q", status, coupon, gotNote)
			}
			if out, _, _ = runCmd(t, "", cmd("orders", "stuck")...); !strings.Contains(out, "No order needs an operator.") {
				t.Fatalf("stuck after retry and resolve:\n%s", out)
			}

			// Orders that need no operator, or do not exist: exit 1, nothing written.
			for _, tc := range []struct {
				args []string
				want string
			}{
				{[]string{"orders", "retry", "ord_old"}, "order ord_old: the order does not need an operator: it is COMPENSATING"},
				{[]string{"orders", "resolve", "ord_done", "--note", "x"}, "it is FAILED"},
				{[]string{"orders", "retry", "ord_nope"}, "no order ord_nope"},
			} {
				out, errOut, code := runCmd(t, "", cmd(tc.args...)...)
				if code != exitFail || !strings.Contains(errOut, tc.want) {
					t.Errorf("%v: exit %d, stderr %q; want 1 and %q\n%s", tc.args, code, errOut, tc.want, out)
				}
			}
			if status, gotNote, _, _ := stored(t, db, "ord_done"); status != statusFailed || gotNote != "" {
				t.Fatalf("a refused resolve changed ord_done: status %d note %q", status, gotNote)
			}
		})
	}
}

// TestOrdersErrors: usage errors exit 2, a missing database exits 1 and is
// not created.
func TestOrdersErrors(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"orders", "retry"}, exitUsage, "an ORDER_ID is required"},
		{[]string{"orders", "retry", "a", "b"}, exitUsage, "one ORDER_ID at a time"},
		{[]string{"orders", "resolve", "ord_1"}, exitUsage, "--note is required"},
		{[]string{"orders", "resolve", "ord_1", "--note", strings.Repeat("x", orderprocessing.MaxOperatorNote+1), "--data", empty}, exitFail, "no OrderProcessing database"},
		{[]string{"orders", "stuck", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"orders", "stuck", "--limit", "0"}, exitUsage, "--limit must be at least 1"},
		{[]string{"orders", "stuck", "--postgres-url", "mysql://x"}, exitUsage, "want a postgres:// URL"},
		{[]string{"orders", "stuck", "--postgres-url", "postgres://x/y", "--schema", "Bad-Name"}, exitUsage, "--schema"},
		{[]string{"orders", "stuck", "--data", empty}, exitFail, "no OrderProcessing database at " + filepath.Join(empty, orderprocessing.Name+".db")},
		{[]string{"help", "orders"}, exitOK, "tokenrelay orders resolve"},
	} {
		out, errOut, code := runCmd(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("the commands created %d file(s) in an empty data directory", len(entries))
	}
}

// TestOrdersNoteTooLong: a note the store refuses is a usage error, and the
// order stays as it was.
func TestOrdersNoteTooLong(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	db, err := sqldb.Open(context.Background(), "sqlite://"+filepath.Join(data, orderprocessing.Name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrateOrderProcessing(t, db)
	insertOrder(t, db, "ord_1", "usr_ann", statusNeedsOperator, stepRefused, "already_exists: no", "r", time.Hour, time.Minute)
	out, errOut, code := runCmd(t, "", "orders", "resolve", "ord_1", "--data", data, "--note", strings.Repeat("é", orderprocessing.MaxOperatorNote+1))
	if code != exitUsage || !strings.Contains(errOut, "longer than") {
		t.Fatalf("resolve with a long note: exit %d\n%s%s", code, out, errOut)
	}
	if status, note, _, coupon := stored(t, db, "ord_1"); status != statusNeedsOperator || note != "" || coupon != stepRefused {
		t.Fatalf("after a refused resolve: status %d note %q step %d", status, note, coupon)
	}
}
