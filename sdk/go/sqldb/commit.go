package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit (SQLite).
//
// SQLite has one writer, and each commit appends every page the
// transaction changed to the WAL: the rightmost leaf of each index that
// grows with time (orders, steps, audit events, ledgers) and the pages of
// hot rows are written again by nearly every transaction, and each commit
// also takes and drops the WAL's locks. Under load, when transactions
// queue for the writer anyway, the committer runs all those waiting as one
// SQLite transaction, each in a savepoint of its own, and commits once: a
// page changed by all of them is written once, the locks taken once.
//
// Each caller keeps the semantics of its own transaction:
//   - a member that fails (returns an error or panics) is rolled back to
//     its savepoint, alone, and gets its error (or panic) as before; the
//     others go on;
//   - a member's result reaches its caller only once the batch committed,
//     so no one sees "committed" for work that may still be lost;
//   - members run in the order they queued and see the effects of those
//     before them in the batch, as they would have, committed, one after
//     the other;
//   - if the batch cannot go on (a savepoint cannot be rolled back or
//     released, because a member's cancelled statement rolled the whole
//     SQLite transaction back, or the commit fails), it is rolled back and
//     every member that had not failed on its own runs again, alone, in a
//     transaction of its own, exactly as before group commit. [DB.Tx]
//     already requires fn to be repeatable (it retries).
//
// A single transaction waiting runs as before, without a savepoint. A
// caller whose context ends before its turn leaves the queue; once its
// turn came it waits for the batch, which its own statements, run with its
// context, cut short.

// maxBatch bounds the members of one group commit: a batch holds the
// writer for the sum of its members' work.
const maxBatch = 64

// member states (txReq.state).
const (
	queued int32 = iota
	taken
	abandoned
)

// txReq is one [DB.Tx] attempt waiting for the committer.
type txReq struct {
	ctx   context.Context
	fn    func(*sql.Tx) error
	state atomic.Int32
	done  chan txDone // buffered: the committer never waits for the caller
}

// txDone is the outcome of a txReq: its error, or the value its fn
// panicked with.
type txDone struct {
	err      error
	panicked bool
	panicVal any
}

// committer runs SQLite's writing transactions, one batch at a time, until
// stop is closed.
type committer struct {
	pool    *sql.DB
	reqs    chan *txReq
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once // close
	// commits and grouped count the commits of batches of two or more
	// members and their members (tests read them).
	commits, grouped atomic.Int64
	// onQueue, if set (tests), is called when a request is queued.
	onQueue func()
}

func newCommitter(pool *sql.DB) *committer {
	c := &committer{pool: pool, reqs: make(chan *txReq, maxBatch), stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c
}

// close stops the committer once the batch in progress is over.
func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
}

// tx runs fn through the committer and returns its outcome; it re-raises
// fn's panic.
func (c *committer) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	r := &txReq{ctx: ctx, fn: fn, done: make(chan txDone, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("sqldb: begin: %w", ctx.Err())
	case <-c.stopped:
		return errClosed
	}
	if c.onQueue != nil {
		c.onQueue()
	}
	var d txDone
	select {
	case d = <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return fmt.Errorf("sqldb: begin: %w", ctx.Err())
		}
		d = <-r.done // its turn came: the outcome follows
	case <-c.stopped:
		select {
		case d = <-r.done:
		default:
			return errClosed
		}
	}
	if d.panicked {
		panic(d.panicVal)
	}
	return d.err
}

func (c *committer) run() {
	defer close(c.stopped)
	batch := make([]*txReq, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		case <-c.stop:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		c.runBatch(batch)
	}
}

// runBatch runs the requests of batch whose callers still wait.
func (c *committer) runBatch(batch []*txReq) {
	live := make([]*txReq, 0, len(batch))
	for _, r := range batch {
		if !r.state.CompareAndSwap(queued, taken) {
			continue // its caller gave up
		}
		if err := r.ctx.Err(); err != nil {
			r.done <- txDone{err: fmt.Errorf("sqldb: begin: %w", err)}
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
	case 1:
		live[0].done <- c.alone(live[0])
	default:
		c.group(live)
	}
}

// alone runs r in a transaction of its own.
func (c *committer) alone(r *txReq) txDone {
	return protect(func() error { return runTx(r.ctx, c.pool, r.fn) })
}

// group runs members in one transaction, each in a savepoint, and commits
// once; see the comment at the top of this file.
func (c *committer) group(members []*txReq) {
	bg := context.Background() // the batch's own statements belong to no caller
	tx, err := c.pool.BeginTx(bg, nil)
	if err != nil {
		c.rerun(members)
		return
	}
	ok := make([]*txReq, 0, len(members))
	for i, r := range members {
		if _, err := tx.ExecContext(bg, `SAVEPOINT member`); err != nil {
			c.abandon(tx, append(ok, members[i:]...))
			return
		}
		d := protect(func() error { return r.fn(tx) })
		if d.err == nil && !d.panicked {
			if _, err := tx.ExecContext(bg, `RELEASE member`); err != nil {
				c.abandon(tx, append(ok, members[i:]...))
				return
			}
			ok = append(ok, r)
			continue
		}
		// r failed on its own: undo its work alone. Its outcome is its
		// failure, whatever becomes of the batch.
		_, rbErr := tx.ExecContext(bg, `ROLLBACK TO member`)
		if rbErr == nil {
			_, rbErr = tx.ExecContext(bg, `RELEASE member`)
		}
		r.done <- d
		if rbErr != nil {
			c.abandon(tx, append(ok, members[i+1:]...))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		c.rerun(ok)
		return
	}
	if len(ok) > 1 {
		c.commits.Add(1)
		c.grouped.Add(int64(len(ok)))
	}
	for _, r := range ok {
		r.done <- txDone{}
	}
}

// abandon rolls the batch back and runs members again, each alone.
func (c *committer) abandon(tx *sql.Tx, members []*txReq) {
	_ = tx.Rollback() // may already be rolled back; the members are run again either way
	c.rerun(members)
}

func (c *committer) rerun(members []*txReq) {
	for _, r := range members {
		r.done <- c.alone(r)
	}
}

// protect runs f and turns its panic into a txDone.
func protect(f func() error) (d txDone) {
	defer func() {
		if v := recover(); v != nil {
			d = txDone{panicked: true, panicVal: v}
		}
	}()
	return txDone{err: f()}
}

// runTx runs fn in a transaction of pool and commits it; on error or panic
// it rolls back.
func runTx(ctx context.Context, pool *sql.DB, fn func(*sql.Tx) error) (err error) {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// When ctx is cancelled database/sql has already rolled back and
		// Rollback reports ErrTxDone; that is not news.
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("sqldb: rollback: %w", rbErr))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	// Commit ends the transaction whether it succeeds or not.
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	return nil
}
