package capabilitysql_test

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// purgeSchema is the part of a domain's two tables Purge reads, with the
// foreign key every domain declares.
func purgeSchema(t *testing.T, db *sqldb.DB) {
	t.Helper()
	ts := "TIMESTAMP"
	if db.Dialect() == sqldb.Postgres {
		ts = "TIMESTAMPTZ"
	}
	for _, stmt := range []string{
		`CREATE TABLE confirmations (jti TEXT NOT NULL PRIMARY KEY, sealed_token TEXT NOT NULL, expires_at ` + ts + ` NOT NULL)`,
		`CREATE INDEX confirmations_expires_at ON confirmations (expires_at)`,
		`CREATE TABLE exercises (jti TEXT NOT NULL PRIMARY KEY REFERENCES confirmations (jti), order_id TEXT NOT NULL,
			state BIGINT NOT NULL, applied_at ` + ts + `, compensated_at ` + ts + `)`,
	} {
		if _, err := db.SQL().ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

// token is one confirmation and, when state is set, its exercise row.
type token struct {
	jti                  string
	exp                  time.Time
	state                capability.ExerciseState // 0: never exercised
	applied, compensated time.Time
}

func insertToken(t *testing.T, db *sqldb.DB, tok token) {
	t.Helper()
	ctx := t.Context()
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO confirmations (jti, sealed_token, expires_at) VALUES ($1, 'v1.sealed', $2)`,
		tok.jti, tok.exp.UTC()); err != nil {
		t.Fatal(err)
	}
	if tok.state == 0 {
		return
	}
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO exercises (jti, order_id, state, applied_at, compensated_at) VALUES ($1, 'ord', $2, $3, $4)`,
		tok.jti, tok.state, capabilitysql.NullTime(tok.applied), capabilitysql.NullTime(tok.compensated)); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, db *sqldb.DB, table, jti string) bool {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table+` WHERE jti = $1`, jti).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestPurge (issue 15, item 8): a token's two records go once the retention
// has passed since its expiry and its exercise's last change, and not
// before; a token not yet expired, or whose exercise changed recently, or
// that is still being exercised, stays.
func TestPurge(t *testing.T) {
	t.Parallel()
	const retention = 30 * 24 * time.Hour
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	cutoff := now.Add(-retention)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	tests := []struct {
		tok  token
		gone bool
	}{
		{token{jti: "never-exercised-past-retention", exp: old}, true},
		{token{jti: "never-exercised-within-retention", exp: recent}, false},
		{token{jti: "live", exp: now.Add(time.Minute)}, false},
		{token{jti: "applied-past-retention", exp: old, state: capability.ExerciseApplied, applied: old.Add(-time.Minute)}, true},
		{token{jti: "applied-within-retention", exp: recent, state: capability.ExerciseApplied, applied: recent.Add(-time.Minute)}, false},
		{token{jti: "compensated-past-retention", exp: old, state: capability.ExerciseApplied,
			applied: old.Add(-time.Minute), compensated: old}, true},
		{token{jti: "voided-past-retention", exp: old, state: capability.ExerciseCompensated, compensated: old.Add(-time.Hour)}, true},
		// Expired long ago, but compensated within the retention: a retry of
		// that compensation must still find its record.
		{token{jti: "compensated-late", exp: old, state: capability.ExerciseCompensated,
			applied: old.Add(-time.Minute), compensated: recent}, false},
		{token{jti: "not-final", exp: old, state: 9, applied: old}, false},
	}
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		purgeSchema(t, db)
		for _, tc := range tests {
			insertToken(t, db, tc.tok)
		}
		if err := audit.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		log := audit.New(db)
		ledger := capabilitysql.Ledger[struct{}, struct{}]{Trail: &audit.Trail{Log: log, Service: "coupons", Now: func() time.Time { return now }}}
		got, err := ledger.Purge(t.Context(), db, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if want := (capabilitysql.Purged{Confirmations: 4, Exercises: 3}); got != want {
			t.Errorf("Purge = %+v, want %+v", got, want)
		}
		for _, tc := range tests {
			if c := exists(t, db, "confirmations", tc.tok.jti); c == tc.gone {
				t.Errorf("%s: confirmation kept = %v, want %v", tc.tok.jti, c, !tc.gone)
			}
			// Each token purged is recorded so, in the batch's transaction.
			evs, err := log.ByJTI(t.Context(), "coupons", tc.tok.jti)
			if err != nil {
				t.Fatal(err)
			}
			if purged := len(evs) == 1 && evs[0].Action == audit.Purged && evs[0].At.Equal(now); purged != tc.gone || len(evs) > 1 {
				t.Errorf("%s: audit events %+v, want a purged event: %v", tc.tok.jti, evs, tc.gone)
			}
			if tc.tok.state != 0 {
				if x := exists(t, db, "exercises", tc.tok.jti); x == tc.gone {
					t.Errorf("%s: exercise kept = %v, want %v", tc.tok.jti, x, !tc.gone)
				}
			}
		}
		// Idempotent: nothing more to do.
		if again, err := ledger.Purge(t.Context(), db, cutoff); err != nil || again != (capabilitysql.Purged{}) {
			t.Errorf("second Purge = %+v, %v; want nothing", again, err)
		}
		if head, err := log.Verify(t.Context(), "coupons"); err != nil || head.Seq != 4 {
			t.Errorf("chain after the purges: %+v, %v; want 4 events", head, err)
		}
		// The trail's own retention: every event is older than a cutoff
		// after now, and the chain stays verifiable without them.
		if n, err := ledger.PurgeTrail(t.Context(), now.Add(time.Hour)); err != nil || n != 4 {
			t.Errorf("PurgeTrail = %d, %v; want 4", n, err)
		}
		if _, err := log.Verify(t.Context(), "coupons"); err != nil {
			t.Errorf("chain after PurgeTrail: %v", err)
		}
	})
}

// TestPurgeConcurrent runs two purges at once over more than two batches,
// as two replicas do: every row is deleted once, counted once, and neither
// purge fails.
func TestPurgeConcurrent(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		purgeSchema(t, db)
		const tokens = 2*capabilitysql.PurgeBatch + 300
		old := now.Add(-48 * time.Hour)
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			for i := range tokens {
				jti := fmt.Sprint("j", i)
				if _, err := tx.ExecContext(t.Context(), `INSERT INTO confirmations (jti, sealed_token, expires_at) VALUES ($1, 'v1.x', $2)`, jti, old); err != nil {
					return err
				}
				if i%2 == 0 {
					if _, err := tx.ExecContext(t.Context(), `INSERT INTO exercises (jti, order_id, state, applied_at) VALUES ($1, 'ord', $2, $3)`,
						jti, capability.ExerciseApplied, old); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		got := make([]capabilitysql.Purged, 2)
		errs := make([]error, 2)
		for i := range got {
			wg.Go(func() { got[i], errs[i] = capabilitysql.Purge(t.Context(), db, now.Add(-time.Hour)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("purge %d: %v", i, err)
			}
		}
		// A purge whose batch came back short while the other held rows
		// stopped; the next run takes what is left.
		more, err := capabilitysql.Purge(t.Context(), db, now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		c := got[0].Confirmations + got[1].Confirmations + more.Confirmations
		x := got[0].Exercises + got[1].Exercises + more.Exercises
		if c != tokens || x != tokens/2 {
			t.Errorf("purges deleted %d confirmations and %d exercises (%+v, %+v, %+v); want %d and %d",
				c, x, got[0], got[1], more, tokens, tokens/2)
		}
		var left int
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM confirmations`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d confirmations left (%v)", left, err)
		}
	})
}
