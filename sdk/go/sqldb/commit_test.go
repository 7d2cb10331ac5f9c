package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// groupDB opens a SQLite database with a table k and a hook that reports
// each transaction queued for the committer on the returned channel.
func groupDB(t *testing.T) (*sqldb.DB, <-chan struct{}) {
	t.Helper()
	db, err := sqldb.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	queued := make(chan struct{}, 64)
	sqldb.OnQueue(db, func() { queued <- struct{}{} })
	if _, err := db.SQL().ExecContext(t.Context(), `CREATE TABLE k (k TEXT NOT NULL PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return db, queued
}

// hold runs a transaction that writes "held" and keeps the committer busy
// until the returned release is called; it returns once that transaction
// runs, and release returns its outcome.
func hold(t *testing.T, db *sqldb.DB, queued <-chan struct{}) (release func() error) {
	t.Helper()
	running, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.Tx(context.Background(), func(tx *sql.Tx) error {
			close(running)
			<-unblock
			_, err := tx.Exec(`INSERT INTO k VALUES ('held')`)
			return err
		})
	}()
	<-queued
	<-running
	return func() error { close(unblock); return <-done }
}

func insert(key string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO k VALUES ($1)`, key)
		return err
	}
}

func keys(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	rows, err := db.SQL().QueryContext(t.Context(), `SELECT k FROM k ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// txResult is what one [sqldb.DB.Tx] call ended with: its error, or the
// value it panicked with.
type txResult struct {
	err      error
	panicked any
}

// submit runs db.Tx(ctx, fn) in a goroutine, waits until it has queued,
// and returns where its outcome arrives.
func submit(ctx context.Context, db *sqldb.DB, queued <-chan struct{}, fn func(*sql.Tx) error) <-chan txResult {
	out := make(chan txResult, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				out <- txResult{panicked: v}
			}
		}()
		out <- txResult{err: db.Tx(ctx, fn)}
	}()
	<-queued
	return out
}

// TestGroupCommit (issue 17): transactions that queue while the writer is
// busy commit together, once, each keeping its own outcome: one that fails
// or panics is rolled back alone and gets its error or its panic, one whose
// caller gave up before its turn never runs, the others commit.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	db, queued := groupDB(t)
	release := hold(t, db, queued)
	errFail := errors.New("refused")
	ranCancelled := false
	a := submit(t.Context(), db, queued, insert("a"))
	b := submit(t.Context(), db, queued, func(tx *sql.Tx) error {
		if err := insert("b")(tx); err != nil {
			return err
		}
		return errFail
	})
	c := submit(t.Context(), db, queued, func(tx *sql.Tx) error {
		if err := insert("c")(tx); err != nil {
			return err
		}
		panic("boom")
	})
	cctx, cancel := context.WithCancel(t.Context())
	f := submit(cctx, db, queued, func(tx *sql.Tx) error { ranCancelled = true; return insert("f")(tx) })
	cancel()
	if r := <-f; !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled while queued: %+v, want context.Canceled", r)
	}
	d := submit(t.Context(), db, queued, insert("d"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		ch       <-chan txResult
		err      error
		panicked any
	}{"a": {a, nil, nil}, "b": {b, errFail, nil}, "c": {c, nil, "boom"}, "d": {d, nil, nil}} {
		r := <-want.ch
		if !errors.Is(r.err, want.err) || (want.err == nil) != (r.err == nil) || r.panicked != want.panicked {
			t.Errorf("%s: %+v, want error %v, panic %v", name, r, want.err, want.panicked)
		}
	}
	if ranCancelled {
		t.Error("a transaction whose caller gave up before its turn ran")
	}
	if got, want := keys(t, db), []string{"a", "d", "held"}; !slices.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if batches, members := sqldb.GroupCommits(db); batches != 1 || members != 2 {
		t.Errorf("%d group commits of %d transactions, want 1 of 2 (a and d)", batches, members)
	}
}

// TestGroupCommitBrokenBatch: a member that ends the shared SQLite
// transaction (here by ROLLBACK; in service, a statement interrupted by its
// cancelled context) breaks the batch; every member then runs again alone,
// so the others still commit and only the culprit fails.
func TestGroupCommitBrokenBatch(t *testing.T) {
	t.Parallel()
	db, queued := groupDB(t)
	release := hold(t, db, queued)
	runs := map[string]int{}
	count := func(name string, fn func(*sql.Tx) error) func(*sql.Tx) error {
		return func(tx *sql.Tx) error { runs[name]++; return fn(tx) }
	}
	x := submit(t.Context(), db, queued, count("x", insert("x")))
	breaker := submit(t.Context(), db, queued, count("breaker", func(tx *sql.Tx) error {
		_, err := tx.Exec(`ROLLBACK`)
		return err
	}))
	y := submit(t.Context(), db, queued, count("y", insert("y")))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan txResult{"x": x, "y": y} {
		if r := <-ch; r.err != nil || r.panicked != nil {
			t.Errorf("%s: %+v, want committed", name, r)
		}
	}
	if r := <-breaker; r.err == nil {
		t.Error("the member that ended the transaction itself reported success")
	}
	if got, want := keys(t, db), []string{"held", "x", "y"}; !slices.Equal(got, want) {
		t.Errorf("committed %v, want %v", got, want)
	}
	if got := fmt.Sprint(runs); got != "map[breaker:2 x:2 y:1]" {
		t.Errorf("runs %s: want x and the breaker run twice (in the batch, then alone), y once (alone)", got)
	}
	if batches, _ := sqldb.GroupCommits(db); batches != 0 {
		t.Errorf("%d group commits, want none", batches)
	}
}
