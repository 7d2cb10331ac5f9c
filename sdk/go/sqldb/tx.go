package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff bounds between attempts of [DB.Tx]: the wait doubles from
// txBackoffMin up to txBackoffMax, and a random part of it is taken so that
// the losers of one race do not collide again.
const (
	txBackoffMin = 5 * time.Millisecond
	txBackoffMax = 500 * time.Millisecond
)

// Tx runs fn in a transaction and commits it. If fn returns an error, or
// panics, the transaction is rolled back and the error (or panic) is passed
// on unchanged apart from wrapping.
//
// When the transaction fails with a retryable error ([IsRetryable]: SQLite
// busy or locked, PostgreSQL serialization failure or deadlock) at BEGIN,
// inside fn, or at COMMIT, Tx rolls back, waits a bounded, jittered backoff
// and runs fn again from the start, up to the attempts set by
// [WithTxAttempts] (default 5). fn must therefore have no effect outside the
// transaction that it cannot repeat. Other errors are never retried.
//
// An error that means the database is unavailable ([IsUnavailable]: the
// connection lost or refused, the server shutting down, SQLite still busy
// after the last attempt) comes back wrapped with [ErrUnavailable]. Such a
// transaction is not run again here: a connection lost at COMMIT leaves its
// outcome unknown, so the decision to repeat the call belongs to the client,
// with its idempotency key.
//
// The transaction uses the driver's default isolation: read committed on
// PostgreSQL, serializable (one writer) on SQLite.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	backoff := txBackoffMin
	for attempt := 1; ; attempt++ {
		err := db.txOnce(ctx, fn)
		if err == nil || !IsRetryable(err) {
			return markUnavailable(err)
		}
		if attempt >= db.txAttempts {
			return markUnavailable(fmt.Errorf("sqldb: transaction failed after %d attempts: %w", attempt, err))
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, txBackoffMax)
	}
}

func (db *DB) txOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.commit != nil {
		return db.commit.tx(ctx, fn)
	}
	return runTx(ctx, db.sql, fn)
}
