package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Prepared statements.
//
// Through database/sql without a prepared statement, modernc.org/sqlite
// compiles the SQL text on every call (sqlite3_prepare_v2, then finalize):
// in the checkout's CPU profile that was about a third of SQLite's time. A
// *sql.Stmt prepared once on the pool is prepared lazily on each pooled
// connection the first time it runs there, and database/sql keeps that
// per-connection statement (modernc keeps the compiled sqlite3_stmt in it),
// so a later run costs a reset and a bind. PostgreSQL needs none of this:
// pgx's default query mode (cache_statement) already prepares each SQL text
// once per connection and reuses it, so [DB.Cached] steps aside there.

// maxCachedStmts bounds the statement cache. Stores pass constant SQL
// texts, a few dozen per service; a text built from data would otherwise
// grow the cache without bound. Past the bound, statements run unprepared.
const maxCachedStmts = 256

// errStmtCacheFull is returned by [DB.Stmt] when the cache is at its bound.
var errStmtCacheFull = errors.New("sqldb: statement cache full")

// errClosed is returned by [DB.Stmt] after [DB.Close].
var errClosed = errors.New("sqldb: database is closed")

// stmtCache memoises prepared statements by SQL text. The zero value is
// ready to use.
type stmtCache struct {
	stmts sync.Map // string -> *sql.Stmt; read without the lock

	mu      sync.Mutex
	n       int                      // entries in stmts
	pending map[string]chan struct{} // texts being prepared in the background; closed when done
	closed  bool
	bg      sync.WaitGroup // background prepares (prepareLater), which close waits for
}

// Stmt returns the prepared statement for query from db's cache, preparing
// it on first use (which takes a connection from the pool: inside a
// transaction, use [DB.Cached] instead, which never waits for a second
// connection). The statement belongs to db and stays valid until
// [DB.Close]: do not close it. Use it in a transaction through
// tx.StmtContext. It fails when query does not prepare, after Close, and
// when the cache already holds 256 statements.
func (db *DB) Stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &db.stmts
	if s, ok := c.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	c.mu.Lock()
	closed, full := c.closed, c.n >= maxCachedStmts
	c.mu.Unlock()
	switch {
	case closed:
		return nil, errClosed
	case full:
		return nil, errStmtCacheFull
	}
	s, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts.Load(query); ok { // prepared concurrently
		_ = s.Close()
		return prev.(*sql.Stmt), nil
	}
	if c.closed || c.n >= maxCachedStmts {
		_ = s.Close()
		if c.closed {
			return nil, errClosed
		}
		return nil, errStmtCacheFull
	}
	c.stmts.Store(query, s)
	c.n++
	return s, nil
}

// prepareLater prepares query into the cache in the background, once:
// called from inside a transaction, which must not wait for a second
// connection (with every pooled connection held by a transaction doing the
// same, none would come).
func (db *DB) prepareLater(query string) {
	c := &db.stmts
	c.mu.Lock()
	if _, busy := c.pending[query]; busy || c.closed || c.n >= maxCachedStmts {
		c.mu.Unlock()
		return
	}
	if c.pending == nil {
		c.pending = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	c.pending[query] = done
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		defer close(done)
		_, _ = db.Stmt(context.Background(), query) // on failure the text keeps running unprepared
		c.mu.Lock()
		delete(c.pending, query)
		c.mu.Unlock()
	}()
}

// close closes every cached statement; later [DB.Stmt] calls fail. It
// waits first for the background prepares in flight, so that none holds a
// connection of the pool after [DB.Close] (a SQLite connection closing
// then would still touch the database's files).
func (c *stmtCache) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.bg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	c.stmts.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		c.stmts.Delete(k)
		return true
	})
	c.n = 0
	return errors.Join(errs...)
}

// Cached runs SQL through db's statement cache ([DB.Stmt]) on SQLite, and
// straight through pgx (which caches prepared statements itself) on
// PostgreSQL. Its methods have the signatures of those of *sql.DB and
// *sql.Tx, so it serves wherever a store passes either. Obtain it with
// [DB.Cached]; the zero value is not usable.
type Cached struct {
	db *DB
	tx *sql.Tx
}

// Cached returns a handle that runs statements on the pool when tx is nil,
// else inside tx (which must belong to db), as prepared statements from
// db's cache. A statement that cannot be prepared, or is not cached yet
// inside a transaction, runs exactly as through the pool or tx directly,
// so results and errors are the same either way; only the cost differs.
// Pass constant SQL texts: the cache holds at most 256.
func (db *DB) Cached(tx *sql.Tx) Cached { return Cached{db: db, tx: tx} }

// stmt returns the statement to run query with, or nil to run it directly.
func (c Cached) stmt(ctx context.Context, query string) *sql.Stmt {
	if c.db.dialect != SQLite {
		return nil
	}
	if s, ok := c.db.stmts.stmts.Load(query); ok {
		if c.tx != nil {
			return c.tx.StmtContext(ctx, s.(*sql.Stmt))
		}
		return s.(*sql.Stmt)
	}
	if c.tx != nil {
		c.db.prepareLater(query)
		return nil
	}
	s, err := c.db.Stmt(ctx, query)
	if err != nil {
		return nil
	}
	return s
}

// ExecContext is [sql.DB.ExecContext] (or [sql.Tx.ExecContext]) through the
// statement cache.
func (c Cached) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := c.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	if c.tx != nil {
		return c.tx.ExecContext(ctx, query, args...)
	}
	return c.db.sql.ExecContext(ctx, query, args...)
}

// QueryContext is [sql.DB.QueryContext] (or [sql.Tx.QueryContext]) through
// the statement cache.
func (c Cached) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := c.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	if c.tx != nil {
		return c.tx.QueryContext(ctx, query, args...)
	}
	return c.db.sql.QueryContext(ctx, query, args...)
}

// QueryRowContext is [sql.DB.QueryRowContext] (or [sql.Tx.QueryRowContext])
// through the statement cache.
func (c Cached) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := c.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	if c.tx != nil {
		return c.tx.QueryRowContext(ctx, query, args...)
	}
	return c.db.sql.QueryRowContext(ctx, query, args...)
}
