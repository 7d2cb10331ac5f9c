package replay_test

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

const iss = "https://coupons.tokenrelay.test"

// setup migrates db for replay plus an effects table standing in for the
// work a token authorizes, and returns a Guard over it.
func setup(t *testing.T, db *sqldb.DB, opts ...replay.Option) *replay.Guard {
	t.Helper()
	if err := replay.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(t.Context(), `CREATE TABLE effects (jti TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	g, err := replay.New(db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// use consumes (iss, jti) and records its effect in one transaction, as a
// service does, marking the fast path after commit.
func use(t *testing.T, db *sqldb.DB, g *replay.Guard, jti string, exp time.Time) error {
	t.Helper()
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		if err := g.Consume(t.Context(), tx, iss, jti, exp); err != nil {
			return err
		}
		_, err := tx.ExecContext(t.Context(), `INSERT INTO effects (jti) VALUES ($1)`, jti)
		return err
	})
	if err == nil {
		g.Mark(iss, jti, exp)
	}
	return err
}

func effects(t *testing.T, db *sqldb.DB, jti string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM effects WHERE jti = $1`, jti).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentConsumersExactlyOneWins(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		g := setup(t, db)
		exp := time.Now().Add(2 * time.Minute)
		const consumers = 100
		start := make(chan struct{})
		errs := make(chan error, consumers)
		var wg sync.WaitGroup
		for range consumers {
			wg.Go(func() {
				<-start
				// No Mark: the database alone must decide.
				errs <- db.Tx(t.Context(), func(tx *sql.Tx) error {
					if err := g.Consume(t.Context(), tx, iss, "jti-race", exp); err != nil {
						return err
					}
					_, err := tx.ExecContext(t.Context(), `INSERT INTO effects (jti) VALUES ($1)`, "jti-race")
					return err
				})
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		var won, replayed int
		for err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, replay.ErrReplayed):
				replayed++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 || replayed != consumers-1 {
			t.Errorf("%d won, %d replayed; want 1 and %d", won, replayed, consumers-1)
		}
		if n := effects(t, db, "jti-race"); n != 1 {
			t.Errorf("effect applied %d times, want 1", n)
		}
	})
}

func TestRollbackDoesNotConsume(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		g := setup(t, db)
		exp := time.Now().Add(time.Minute)
		errEffect := errors.New("effect failed")
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			if err := g.Consume(t.Context(), tx, iss, "jti-rb", exp); err != nil {
				return err
			}
			return errEffect
		})
		if !errors.Is(err, errEffect) {
			t.Fatalf("Tx() = %v, want %v", err, errEffect)
		}
		if g.Seen(iss, "jti-rb") {
			t.Error("fast path marked a token whose transaction rolled back")
		}
		if err := use(t, db, g, "jti-rb", exp); err != nil {
			t.Fatalf("token refused after its consuming transaction rolled back: %v", err)
		}
		if err := use(t, db, g, "jti-rb", exp); !errors.Is(err, replay.ErrReplayed) {
			t.Errorf("replay after commit: %v, want ErrReplayed", err)
		}
	})
}

// TestReplayKeepsTransactionUsable checks that a refused Consume leaves the
// transaction open for more work, which a failed INSERT would not on
// PostgreSQL (25P02 "current transaction is aborted").
func TestReplayKeepsTransactionUsable(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		g := setup(t, db)
		exp := time.Now().Add(time.Minute)
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			if err := g.Consume(t.Context(), tx, iss, "jti-twice", exp); err != nil {
				return err
			}
			if err := g.Consume(t.Context(), tx, iss, "jti-twice", exp); !errors.Is(err, replay.ErrReplayed) {
				return fmt.Errorf("second Consume = %v, want ErrReplayed", err)
			}
			_, err := tx.ExecContext(t.Context(), `INSERT INTO effects (jti) VALUES ($1)`, "jti-twice")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := effects(t, db, "jti-twice"); n != 1 {
			t.Errorf("effect count = %d, want 1", n)
		}
	})
}

// TestReplayRefusedAfterEviction fills a tiny fast-path cache far past its
// capacity and checks that every consumed token is still refused, by the
// database where the cache has forgotten it.
func TestReplayRefusedAfterEviction(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		const capacity, tokens = 8, 300
		g := setup(t, db, replay.WithCacheEntries(capacity))
		exp := time.Now().Add(time.Hour)
		for i := range tokens {
			if err := use(t, db, g, fmt.Sprint("jti-", i), exp); err != nil {
				t.Fatalf("first use of jti-%d: %v", i, err)
			}
		}
		forgotten := 0
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			for i := range tokens {
				jti := fmt.Sprint("jti-", i)
				if !g.Seen(iss, jti) {
					forgotten++
				}
				if err := g.Consume(t.Context(), tx, iss, jti, exp); !errors.Is(err, replay.ErrReplayed) {
					return fmt.Errorf("replay of %s: %v, want ErrReplayed", jti, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if forgotten < tokens-capacity {
			t.Errorf("cache forgot only %d of %d tokens; the test did not exercise eviction", forgotten, tokens)
		}
	})
}

// TestFastPathSkipsDatabase hands Consume a finished transaction: any
// database access would fail with sql.ErrTxDone, so ErrReplayed proves the
// cache answered alone.
func TestFastPathSkipsDatabase(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	g := setup(t, db)
	exp := time.Now().Add(time.Minute)
	if err := use(t, db, g, "jti-fast", exp); err != nil {
		t.Fatal(err)
	}
	tx, err := db.SQL().BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := g.Consume(t.Context(), tx, iss, "jti-fast", exp); !errors.Is(err, replay.ErrReplayed) {
		t.Errorf("marked token: Consume = %v, want ErrReplayed from the cache", err)
	}
	if err := g.Consume(t.Context(), tx, iss, "jti-unmarked", exp); !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("unmarked token: Consume = %v, want sql.ErrTxDone (a database access)", err)
	}
}

func TestMark(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		iss, jti string
		exp      time.Time
		wantSeen bool
	}{
		{"live token", iss, "a", now.Add(time.Minute), true},
		{"expired within leeway", iss, "b", now.Add(-10 * time.Second), true},
		{"expired beyond leeway", iss, "c", now.Add(-time.Minute), false},
		{"no jti", iss, "", now.Add(time.Minute), false},
		{"no iss", "", "d", now.Add(time.Minute), false},
	}
	db := sqldbtest.SQLite(t)
	g, err := replay.New(db, replay.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g.Mark(tt.iss, tt.jti, tt.exp)
			if got := g.Seen(tt.iss, tt.jti); got != tt.wantSeen {
				t.Errorf("Seen after Mark = %v, want %v", got, tt.wantSeen)
			}
		})
	}
	// Where the issuer ends is part of the key.
	g.Mark("a", "b:c", now.Add(time.Minute))
	if g.Seen("a:b", "c") || g.Seen("ab", ":c") {
		t.Error("Seen confused the issuer and jti boundary")
	}
}

func TestConsumeRefusesEmptyIdentifiers(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	g := setup(t, db)
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		for _, id := range [][2]string{{"", "jti"}, {iss, ""}} {
			if err := g.Consume(t.Context(), tx, id[0], id[1], time.Now().Add(time.Minute)); !errors.Is(err, replay.ErrInvalidToken) {
				t.Errorf("Consume(%q, %q) = %v, want ErrInvalidToken", id[0], id[1], err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.New(db, replay.WithCacheEntries(0)); err == nil {
		t.Error("New accepted a zero-entry cache")
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		g := setup(t, db)
		now := time.Now().Truncate(time.Second)
		tokens := []struct {
			jti        string
			exp        time.Time
			wantPruned bool
		}{
			{"long-expired", now.Add(-time.Hour), true},
			{"expired-beyond-leeway", now.Add(-replay.DefaultLeeway - 2*time.Second), true},
			{"expired-within-leeway", now.Add(-replay.DefaultLeeway + 2*time.Second), false},
			{"live", now.Add(time.Minute), false},
		}
		for _, tok := range tokens {
			if err := use(t, db, g, tok.jti, tok.exp); err != nil {
				t.Fatal(err)
			}
		}
		// Bulk rows: more than one Prune batch.
		_, err := db.SQL().ExecContext(t.Context(),
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
			INSERT INTO consumed_jtis (iss, jti, expires_at) SELECT 'bulk', 'j' || i, 0 FROM n`)
		if err != nil {
			t.Fatal(err)
		}
		n, err := g.Prune(t.Context(), now)
		if err != nil {
			t.Fatal(err)
		}
		if n != 6002 {
			t.Errorf("Prune deleted %d rows, want 6002", n)
		}
		// A fresh Guard has an empty cache, so the database answers.
		fresh, err := replay.New(db)
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		for _, tok := range tokens {
			err := db.Tx(t.Context(), func(tx *sql.Tx) error {
				return fresh.Consume(t.Context(), tx, iss, tok.jti, tok.exp)
			})
			if pruned := err == nil; pruned != tok.wantPruned {
				t.Errorf("%s: pruned = %v (Consume: %v), want %v", tok.jti, pruned, err, tok.wantPruned)
			}
		}
	})
}

// TestPruneConcurrent runs two prunes at once, as two replicas do: each
// expired record is deleted once, counted by the prune that deleted it,
// neither prune fails, and live records stay.
func TestPruneConcurrent(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		g := setup(t, db)
		now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
		const expired, live = 2*replay.PruneBatch + 500, 300
		_, err := db.SQL().ExecContext(t.Context(),
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
			INSERT INTO consumed_jtis (iss, jti, expires_at) SELECT 'bulk', 'j' || i,
				CASE WHEN i <= $2 THEN CAST($3 AS BIGINT) ELSE CAST($4 AS BIGINT) END FROM n`,
			expired+live, expired, now.Add(-time.Hour).Unix(), now.Add(time.Hour).Unix())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		counts := make([]int64, 2)
		errs := make([]error, 2)
		for i := range counts {
			wg.Go(func() { counts[i], errs[i] = g.Prune(t.Context(), now) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("prune %d: %v", i, err)
			}
		}
		// A prune that stopped early (its batch short while the other held
		// rows) leaves the rest to the next run: run one more.
		more, err := g.Prune(t.Context(), now)
		if err != nil {
			t.Fatal(err)
		}
		if got := counts[0] + counts[1] + more; got != expired {
			t.Errorf("prunes deleted %d + %d + %d rows, want %d in all", counts[0], counts[1], more, expired)
		}
		var left int
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM consumed_jtis`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != live {
			t.Errorf("%d records left, want the %d live ones", left, live)
		}
	})
}

func TestMigrationsWithSqldb(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	// The exported FS and Migrate apply the same set: both together create
	// the table once.
	if err := sqldb.Migrate(t.Context(), db, replay.Migrations(), sqldb.MigrationSet(replay.MigrationSet)); err != nil {
		t.Fatal(err)
	}
	if err := replay.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
}
