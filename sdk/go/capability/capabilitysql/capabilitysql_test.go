package capabilitysql_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

var errNotFound = errors.New("not found")

type confirmation struct {
	JTI, UserID, Key, Sealed string
}

type exercise struct {
	JTI, OrderID string
	AppliedAt    time.Time
}

var confirmations = capabilitysql.Confirmations[confirmation]{
	Table: capabilitysql.Table[confirmation]{
		Columns: `jti, user_id, idempotency_key, sealed_token`,
		Values:  func(c confirmation) []any { return []any{c.JTI, c.UserID, c.Key, c.Sealed} },
		Scan: func(row capabilitysql.Scanner) (confirmation, error) {
			var c confirmation
			err := row.Scan(&c.JTI, &c.UserID, &c.Key, &c.Sealed)
			if errors.Is(err, sql.ErrNoRows) {
				err = errNotFound
			}
			return c, err
		},
	},
	UserKey: func(c confirmation) (string, string) { return c.UserID, c.Key },
}

var exercises = capabilitysql.Exercises[exercise]{Table: capabilitysql.Table[exercise]{
	Columns: `jti, order_id, applied_at`,
	Values:  func(x exercise) []any { return []any{x.JTI, x.OrderID, capabilitysql.NullTime(x.AppliedAt)} },
	Scan: func(row capabilitysql.Scanner) (exercise, error) {
		var x exercise
		var applied sql.NullTime
		err := row.Scan(&x.JTI, &x.OrderID, &applied)
		if errors.Is(err, sql.ErrNoRows) {
			err = errNotFound
		}
		x.AppliedAt = capabilitysql.TimeOf(applied)
		return x, err
	},
}}

func schema(t *testing.T, db *sqldb.DB) {
	t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE confirmations (jti TEXT PRIMARY KEY, user_id TEXT NOT NULL, idempotency_key TEXT NOT NULL,
			sealed_token TEXT NOT NULL)`,
		`CREATE UNIQUE INDEX confirmations_key ON confirmations (user_id, idempotency_key) WHERE idempotency_key <> ''`,
		`CREATE TABLE exercises (jti TEXT PRIMARY KEY, order_id TEXT NOT NULL, applied_at TIMESTAMP)`,
	} {
		if _, err := db.SQL().ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConfirmations(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		schema(t, db)
		ctx, q := t.Context(), db.Cached(nil)
		first := confirmation{JTI: "j1", UserID: "usr_ann", Key: "k1", Sealed: "v1.a"}
		if got, created, err := confirmations.Save(ctx, q, first); err != nil || !created || got != first {
			t.Fatalf("Save(first) = %+v, %v, %v", got, created, err)
		}
		retry := confirmation{JTI: "j2", UserID: "usr_ann", Key: "k1", Sealed: "v1.b"}
		if got, created, err := confirmations.Save(ctx, q, retry); err != nil || created || got != first {
			t.Fatalf("Save(retry) = %+v, %v, %v; want the first", got, created, err)
		}
		for _, c := range []confirmation{{JTI: "j3", UserID: "usr_ann"}, {JTI: "j4", UserID: "usr_ann"}, {JTI: "j5", UserID: "usr_bob", Key: "k1"}} {
			if _, created, err := confirmations.Save(ctx, q, c); err != nil || !created {
				t.Fatalf("Save(%+v) = %v, %v; want created", c, created, err)
			}
		}
		if got, err := confirmations.ByJTI(ctx, q, "j1"); err != nil || got != first {
			t.Fatalf("ByJTI = %+v, %v", got, err)
		}
		if got, err := confirmations.ByKey(ctx, q, "usr_ann", "k1"); err != nil || got != first {
			t.Fatalf("ByKey = %+v, %v", got, err)
		}
		for _, key := range []string{"", "k2"} {
			if _, err := confirmations.ByKey(ctx, q, "usr_ann", key); !errors.Is(err, errNotFound) {
				t.Fatalf("ByKey(%q) = %v, want not found", key, err)
			}
		}
		if _, err := confirmations.ByJTI(ctx, q, "j2"); !errors.Is(err, errNotFound) {
			t.Fatalf("ByJTI(j2) = %v, want not found", err)
		}
	})
}

// TestClaim claims one jti from many goroutines: exactly one inserts, and
// every other gets the row that stands.
func TestClaim(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		schema(t, db)
		applied := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		inserted, orders := 0, map[string]bool{}
		for i := range n {
			wg.Go(func() {
				order := []string{"ord_a", "ord_b"}[i%2]
				err := db.Tx(t.Context(), func(tx *sql.Tx) error {
					x, ins, err := exercises.Claim(context.Background(), db.Cached(tx), "j1", exercise{JTI: "j1", OrderID: order, AppliedAt: applied})
					if err != nil {
						return err
					}
					mu.Lock()
					defer mu.Unlock()
					if ins {
						inserted++
					}
					orders[x.OrderID] = true
					if !x.AppliedAt.Equal(applied) {
						t.Errorf("AppliedAt = %v, want %v", x.AppliedAt, applied)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if inserted != 1 || len(orders) != 1 {
			t.Fatalf("%d claims inserted, orders seen %v; want 1 and one order", inserted, orders)
		}
		if x, err := exercises.ByJTI(t.Context(), db.Cached(nil), "j1"); err != nil || !orders[x.OrderID] {
			t.Fatalf("ByJTI = %+v, %v", x, err)
		}
		if x, ins, err := exercises.Claim(t.Context(), db.Cached(nil), "j2", exercise{JTI: "j2", OrderID: "ord_c"}); err != nil || !ins || !x.AppliedAt.IsZero() {
			t.Fatalf("Claim(j2) = %+v, %v, %v", x, ins, err)
		}
		if x, err := exercises.ByJTI(t.Context(), db.Cached(nil), "j2"); err != nil || !x.AppliedAt.IsZero() {
			t.Fatalf("ByJTI(j2) = %+v, %v; want a NULL applied_at read as zero", x, err)
		}
	})
}

// TestClaimReturnsStored: what a claim that inserts returns is the row as
// the database stored it (PostgreSQL keeps microseconds), the same that every
// later read, and so every retry, gets.
func TestClaimReturnsStored(t *testing.T) {
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		schema(t, db)
		applied := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
		x, ins, err := exercises.Claim(t.Context(), db.Cached(nil), "j1", exercise{JTI: "j1", OrderID: "ord_a", AppliedAt: applied})
		if err != nil || !ins {
			t.Fatalf("Claim = %+v, %v, %v", x, ins, err)
		}
		stored, err := exercises.ByJTI(t.Context(), db.Cached(nil), "j1")
		if err != nil || stored != x {
			t.Fatalf("Claim returned %+v, but the row stored is %+v (%v)", x, stored, err)
		}
	})
}
