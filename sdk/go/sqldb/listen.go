package sqldb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoNotifications is returned by [DB.Listen] on SQLite, which has no
// LISTEN/NOTIFY: every writer of a SQLite database is in one process.
var ErrNoNotifications = errors.New("sqldb: notifications need PostgreSQL")

// Backoff bounds between reconnections of [DB.Listen].
const (
	listenBackoffMin = time.Second
	listenBackoffMax = 30 * time.Second
)

// Listen receives PostgreSQL notifications on channel (LISTEN, on a
// connection of its own outside the pool) and calls fn with each payload, in
// order, until ctx ends; then it returns ctx's error. A lost connection is
// reopened with a backoff of 1 s doubling to 30 s; notifications sent
// while none was listening are lost, so ready is called each time LISTEN
// is in place (the first time and after each reconnection): the caller
// catches up there on what it may have missed. channel must be a plain
// identifier. On SQLite it returns ErrNoNotifications at once.
func (db *DB) Listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error {
	if db.pgConfig == nil {
		return ErrNoNotifications
	}
	if !ValidSchemaName(channel) {
		return fmt.Errorf("sqldb: invalid channel name %q", channel)
	}
	backoff := listenBackoffMin
	for {
		// A failed connection is reopened below; the caller's ready (and
		// its own poll) covers what was missed meanwhile.
		if db.listenOnce(ctx, channel, ready, fn) {
			backoff = listenBackoffMin
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce listens on one connection until it fails or ctx ends, and
// reports whether LISTEN took effect.
func (db *DB) listenOnce(ctx context.Context, channel string, ready func(), fn func(string)) (listened bool) {
	conn, err := pgx.ConnectConfig(ctx, db.pgConfig.Copy())
	if err != nil {
		return false
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true
		}
		fn(n.Payload)
	}
}
