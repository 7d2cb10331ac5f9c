// Package sqldb is the SQL plumbing every tokenrelay service shares: opening
// SQLite (the embedded default) or PostgreSQL (scale-out) behind one
// database/sql handle, transactions that retry on contention, numbered
// migrations, and driver-independent error classification.
//
// # One SQL text for both dialects
//
// Services write PostgreSQL-style numbered placeholders ($1, $2, ...) and
// run the same text on both drivers: modernc.org/sqlite binds "$N" to the
// N-th argument (a repeated $N binds the same argument), so there is no
// Rebind step. Both dialects also accept INSERT ... ON CONFLICT (...) DO
// NOTHING / DO UPDATE and RETURNING. DDL that differs goes into per-dialect
// migration files; the usual differences are time columns (TIMESTAMPTZ on
// PostgreSQL, TIMESTAMP on SQLite, the declared type the driver parses back
// into time.Time) and generated keys. Declare primary-key columns NOT NULL:
// SQLite otherwise accepts NULL in a non-integer primary key.
//
// # SQLite connection policy
//
// SQLite admits one writer at a time. [Open] sets WAL journaling (readers do
// not block the writer), synchronous=NORMAL (durable across process crashes;
// the last transactions may be lost on power failure, which WAL keeps
// consistent), foreign_keys=on, a busy_timeout (default 5 s) and
// _txlock=immediate: every read-write transaction takes the write lock at
// BEGIN. Without it, two deferred transactions that both read and then write
// deadlock on the lock upgrade and one fails with SQLITE_BUSY at once,
// whatever the busy timeout. Read-only transactions (sql.TxOptions.ReadOnly)
// still begin deferred and run concurrently with the writer. [DB.Tx] hands
// its transactions to one committer per database, so writers queue in Go
// (and give up with their context) rather than in SQLite's busy handler,
// which sleeps 1 to 100 ms between tries; the busy timeout remains for
// writes outside [DB.Tx]. The transactions that queued while the committer
// was busy run next as one SQLite transaction, each in a savepoint of its
// own, and commit once (group commit): each keeps its own outcome, and
// under load the pages they all change and the WAL's locks are written
// and taken once a batch instead of once a transaction (commit.go tells
// how failures stay each member's own). Memory-mapped reads (mmap_size) are left off:
// under load the database files grow, and SQLite's remapping (munmap, mmap)
// cost more CPU in the checkout profile (2.4 %) than the preads it saves
// (1.3 %). Times are written
// as UTC text in SQLite's own format ("2006-01-02 15:04:05.999999999+00:00"),
// so comparing a stored time with a time.Time argument orders correctly.
// In-memory SQLite databases are refused: every pooled connection would see
// a different, empty database.
//
// # PostgreSQL
//
// PostgreSQL is reached through github.com/jackc/pgx/v5/stdlib, so both
// dialects share database/sql and every store shares its SQL code. Each
// service owns a schema: [WithSchema] (or a search_path URL parameter) sets
// the connection's search_path, and [WithSchema] creates the schema when it
// is missing.
//
// # Prepared statements
//
// Through database/sql without a prepared statement, modernc.org/sqlite
// compiles the SQL text on every call; that was about a third of SQLite's
// time in a checkout. [DB.Cached] runs a store's statements as prepared
// statements from a per-DB cache ([DB.Stmt]): each text is prepared once per
// pooled connection and reused, inside transactions too (tx.StmtContext).
// A text first met inside a transaction runs unprepared that once and is
// prepared in the background, so a transaction never waits for a second
// connection. On PostgreSQL, pgx already caches a prepared statement per
// connection and text, and [DB.Cached] passes statements straight through.
//
//	err := db.Tx(ctx, func(sqlTx *sql.Tx) error {
//		tx := db.Cached(sqlTx)
//		return tx.QueryRowContext(ctx, `SELECT n FROM kv WHERE k = $1`, k).Scan(&n)
//	})
//
// # Errors
//
// Three classes of error matter to callers, on either driver:
// [IsUniqueViolation] (a constraint refused the row), [IsRetryable] (the
// transaction lost a race; [DB.Tx] runs it again) and [IsUnavailable] (the
// database could not be used: a connection lost, terminated or refused, a
// server shutting down or starting, SQLite busy past its busy timeout).
// [DB.Tx] wraps the last with the group sentinel [ErrUnavailable], and
// package rpcerr answers it with Unavailable rather than Internal, so that
// clients retry. The caller's own deadline or cancellation is never
// unavailable, even when it cut a connection: it stays what it is.
//
// # Migrations
//
// [Migrate] applies the numbered files of an fs.FS exactly once each, in
// version order, recording them in the table schema_migrations. File names:
//
//	NNNN_name.sql           both dialects
//	NNNN_name.sqlite.sql    SQLite only
//	NNNN_name.postgres.sql  PostgreSQL only
//
// A version has either one shared file or dialect-specific files, never both.
// Several components may migrate one database: each applies its files under
// its own migration set ([MigrationSet]), so version 1 of package replay and
// version 1 of a service do not collide. Each file runs in its own
// transaction together with its schema_migrations row; on PostgreSQL that
// transaction first takes an advisory lock, on SQLite the immediate write
// lock, so several processes starting at once apply each file exactly once.
package sqldb
