package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
)

// querier is what stores pass around: *sql.DB, *sql.Tx and sqldb.Cached.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ querier = (*sql.DB)(nil)
	_ querier = (*sql.Tx)(nil)
	_ querier = sqldb.Cached{}
)

// TestCachedSameResults runs the same statements on the pool and in
// transactions, directly and through the cache, on both dialects, and
// expects the same rows, counts and errors.
func TestCachedSameResults(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		exec(t, db, `CREATE TABLE kv (k TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)`)
		const (
			insert = `INSERT INTO kv (k, n) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING`
			get    = `SELECT n FROM kv WHERE k = $1`
			list   = `SELECT k, n FROM kv WHERE n >= $1 ORDER BY k`
			bump   = `UPDATE kv SET n = n + $1 WHERE k = $2`
		)
		// Twice each, so that the second run is a cache hit.
		for round := range 2 {
			c := db.Cached(nil)
			for i := range 3 {
				res, err := c.ExecContext(ctx, insert, fmt.Sprintf("k%d", i), i)
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := res.RowsAffected(); got != int64(1-round) {
					t.Errorf("round %d: insert affected %d rows, want %d", round, got, 1-round)
				}
			}
			var n int64
			if err := c.QueryRowContext(ctx, get, "k2").Scan(&n); err != nil || n != 2+int64(round) {
				t.Errorf("round %d: get = %d, %v; want %d", round, n, err, 2+round)
			}
			if err := c.QueryRowContext(ctx, get, "absent").Scan(&n); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("get absent: %v, want sql.ErrNoRows", err)
			}
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				tc := db.Cached(tx)
				if _, err := tc.ExecContext(ctx, bump, 1, "k2"); err != nil {
					return err
				}
				// The transaction sees its own write, through the cache
				// and directly alike.
				var viaCache, direct int64
				if err := tc.QueryRowContext(ctx, get, "k2").Scan(&viaCache); err != nil {
					return err
				}
				if err := tx.QueryRowContext(ctx, get, "k2").Scan(&direct); err != nil {
					return err
				}
				if viaCache != direct || viaCache != 3+int64(round) {
					t.Errorf("round %d: in tx, cached %d, direct %d; want %d", round, viaCache, direct, 3+round)
				}
				rows, err := tc.QueryContext(ctx, list, 1)
				if err != nil {
					return err
				}
				defer rows.Close()
				var keys []string
				for rows.Next() {
					var k string
					var n int64
					if err := rows.Scan(&k, &n); err != nil {
						return err
					}
					keys = append(keys, k)
				}
				if fmt.Sprint(keys) != "[k1 k2]" {
					t.Errorf("round %d: list = %v, want [k1 k2]", round, keys)
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			if db.Dialect() == sqldb.SQLite {
				waitCached(t, db, bump)
			}
		}
		// A rolled-back transaction leaves nothing behind, cached or not.
		errStop := errors.New("stop")
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := db.Cached(tx).ExecContext(ctx, bump, 100, "k0"); err != nil {
				return err
			}
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("Tx = %v, want errStop", err)
		}
		var n int64
		if err := db.Cached(nil).QueryRowContext(ctx, get, "k0").Scan(&n); err != nil || n != 0 {
			t.Errorf("after rollback k0 = %d, %v; want 0", n, err)
		}
		// Bad SQL fails the same way through the cache and directly.
		for _, q := range []querier{db.SQL(), db.Cached(nil)} {
			if _, err := q.ExecContext(ctx, `SELEC nothing`); err == nil {
				t.Errorf("%T: bad SQL succeeded", q)
			}
			if err := q.QueryRowContext(ctx, `SELECT n FROM missing WHERE k = $1`, "x").Scan(&n); err == nil {
				t.Errorf("%T: query of a missing table succeeded", q)
			}
		}
		// A unique violation keeps its classification through the cache.
		exec(t, db, `CREATE TABLE u (k TEXT NOT NULL PRIMARY KEY)`)
		for i := range 2 {
			_, err := db.Cached(nil).ExecContext(ctx, `INSERT INTO u (k) VALUES ($1)`, "x")
			if i == 1 && !sqldb.IsUniqueViolation(err) {
				t.Errorf("second insert: %v, want a unique violation", err)
			}
		}
	})
}

// waitCached waits until the background preparation of query (a statement
// first met inside a transaction) is over, and fails unless query is then
// in db's statement cache.
func waitCached(t *testing.T, db *sqldb.DB, query string) {
	t.Helper()
	sqldb.WaitPrepared(db, query)
	if !sqldb.IsCached(db, query) {
		t.Fatalf("%q was not cached", query)
	}
}

func TestStmtIsMemoised(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	ctx := t.Context()
	a, err := db.Stmt(ctx, `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.Stmt(ctx, `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("Stmt prepared the same text twice")
	}
	if _, err := db.Stmt(ctx, `SELEC 1`); err == nil {
		t.Error("Stmt prepared bad SQL")
	}
	if sqldb.IsCached(db, `SELEC 1`) {
		t.Error("bad SQL was cached")
	}
}

// TestCachedInTxNeedsNoSecondConn: with a pool of one connection, held by
// the transaction, a statement met for the first time inside it must not
// wait for another connection to be prepared on.
func TestCachedInTxNeedsNoSecondConn(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t, sqldb.WithMaxOpenConns(1))
	exec(t, db, `CREATE TABLE kv (k TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)`)
	// Were a statement to wait for a second connection, the test would hang
	// until the test binary's -timeout, which reports every goroutine.
	ctx := t.Context()
	const insert = `INSERT INTO kv (k, n) VALUES ($1, $2)`
	for i := range 3 {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := db.Cached(tx).ExecContext(ctx, insert, fmt.Sprint(i), i)
			return err
		})
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if i == 0 {
			waitCached(t, db, insert) // then the later ones are hits
		}
	}
}

func TestStmtCacheBound(t *testing.T) {
	t.Parallel()
	db := sqldbtest.SQLite(t)
	ctx := t.Context()
	var n int
	for i := range 300 {
		if err := db.Cached(nil).QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d = %d, %v", i, n, err)
		}
	}
	if !sqldb.IsCached(db, `SELECT 0`) || sqldb.IsCached(db, `SELECT 299`) {
		t.Error("the cache should hold the first texts and not grow past its bound")
	}
	if _, err := db.Stmt(ctx, `SELECT 299`); err == nil {
		t.Error("Stmt past the bound succeeded")
	}
}

func TestStmtAfterClose(t *testing.T) {
	t.Parallel()
	db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.Stmt(t.Context(), `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.QueryRow().Scan(&n); err == nil {
		t.Error("a cached statement still runs after Close")
	}
	if _, err := db.Stmt(t.Context(), `SELECT 2`); err == nil {
		t.Error("Stmt after Close succeeded")
	}
}

// TestCachedConcurrent mixes pool and transaction use of the same cached
// texts from many goroutines (run with -race).
func TestCachedConcurrent(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		exec(t, db, `CREATE TABLE c (id TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)`)
		exec(t, db, `INSERT INTO c (id, n) VALUES ('x', 0)`)
		const workers, each = 8, 20
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				for range each {
					err := db.Tx(ctx, func(tx *sql.Tx) error {
						var n int64
						q := db.Cached(tx)
						if err := q.QueryRowContext(ctx, `SELECT n FROM c WHERE id = $1`+forUpdate(db), "x").Scan(&n); err != nil {
							return err
						}
						_, err := q.ExecContext(ctx, `UPDATE c SET n = $1 WHERE id = $2`, n+1, "x")
						return err
					})
					if err == nil {
						var n int64
						err = db.Cached(nil).QueryRowContext(ctx, `SELECT n FROM c WHERE id = $1`, "x").Scan(&n)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var n int64
		if err := db.SQL().QueryRowContext(ctx, `SELECT n FROM c WHERE id = 'x'`).Scan(&n); err != nil || n != workers*each {
			t.Errorf("counter = %d, %v; want %d", n, err, workers*each)
		}
	})
}

func forUpdate(db *sqldb.DB) string {
	if db.Dialect() == sqldb.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// BenchmarkQueryRow compares a point read run directly (compiled on every
// call by modernc.org/sqlite) with the same read through the cache.
func BenchmarkQueryRow(b *testing.B) {
	db := sqldbtest.SQLite(b)
	ctx := context.Background()
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE kv (k TEXT NOT NULL PRIMARY KEY, v TEXT NOT NULL, n BIGINT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO kv (k, v, n) VALUES ('a', 'x', 1)`); err != nil {
		b.Fatal(err)
	}
	const q = `SELECT k, v, n FROM kv WHERE k = $1 AND n >= $2`
	for name, c := range map[string]querier{"direct": db.SQL(), "cached": db.Cached(nil)} {
		b.Run(name, func(b *testing.B) {
			var k, v string
			var n int64
			for b.Loop() {
				if err := c.QueryRowContext(ctx, q, "a", 0).Scan(&k, &v, &n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
