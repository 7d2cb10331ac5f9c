package adapters

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// PurgeBatch is how many rows one purge transaction deletes or clears at
// most; each purge runs transactions while a batch comes back full.
const PurgeBatch = 1000

// The purges below are idempotent and safe from several replicas at once:
// each batch is one short transaction whose rows are chosen, on
// PostgreSQL, with FOR UPDATE SKIP LOCKED, so that concurrent purges take
// disjoint rows and never wait for each other; the statements that delete
// repeat their conditions, so a row that changed meanwhile is left alone;
// on SQLite the write lock serialises them. Each row is counted by the
// purge that deleted it. On failure a purge returns what it did so far.
// Migration 0004 indexes what they look for.

// PruneConsumed deletes the consumed-jti records of tokens expired beyond
// the replay guard's leeway at now (replay.Guard.Prune): the verifier
// refuses such tokens on their exp alone.
func (s *Store) PruneConsumed(ctx context.Context, now time.Time) (int64, error) {
	return s.guard.Prune(ctx, now)
}

// PurgeCheckouts deletes the checkouts no order was placed for (open past
// their expiry, or cancelled) whose expiry is before before. A cancelled
// checkout's expiry is at most an hour after its creation, so it goes at
// most that long after the retention counted from its cancellation.
func (s *Store) PurgeCheckouts(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.batches(ctx, func(ctx context.Context, tx *sql.Tx) (int64, int, error) {
		ids, err := s.pick(ctx, tx, `SELECT id FROM checkouts WHERE status <> $1 AND expires_at < $2 LIMIT $3`,
			domain.CheckoutPlaced, before.UTC(), PurgeBatch)
		if err != nil || len(ids) == 0 {
			return 0, 0, err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM checkouts WHERE status <> $1 AND expires_at < $2
			AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_id = checkouts.id)
			AND id IN (`+marks(3, len(ids))+`)`, append([]any{domain.CheckoutPlaced, before.UTC()}, ids...)...)
		return affected(res, err, len(ids))
	}, nil)
	if err != nil {
		return n, fmt.Errorf("orderprocessing: purge checkouts: %w", err)
	}
	return n, nil
}

// finished are the final statuses after which nothing touches an order:
// not NEEDS_OPERATOR, which an operator may still send back to the saga,
// which then needs the tokens again.
var finished = []any{domain.OrderCompleted, domain.OrderFailed}

// DropSealedTokens empties the sealed confirmation tokens of the steps of
// orders that ended COMPLETED or FAILED before before (their last update),
// records each token dropped in the audit trail (purged, in the same
// transaction), and returns how many steps it emptied. The saga never
// calls an issuer for such an order again, so the tokens, the sensitive
// part of an order, are of no use; the steps themselves stay as the
// order's history. The operator's re-encryption skips empty values.
func (s *Store) DropSealedTokens(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.batches(ctx, func(ctx context.Context, tx *sql.Tx) (int64, int, error) {
		// Driven by the partial index steps_sealed (EXISTS, not a join:
		// SQLite would start from the orders, the whole history): only
		// steps still holding a token are read.
		rows, err := tx.QueryContext(ctx, `SELECT s.order_id, s.capability, s.issuer, s.jti FROM steps s WHERE s.sealed_token <> ''
			AND EXISTS (SELECT 1 FROM orders o WHERE o.id = s.order_id AND o.status IN ($1, $2) AND o.updated_at < $3)
			LIMIT $4`+s.skipLocked(), append(finished, before.UTC(), PurgeBatch)...)
		if err != nil {
			return 0, 0, err
		}
		var keys []any
		var purged []audit.Event
		for rows.Next() {
			var order, capability, issuer, jti string
			if err := rows.Scan(&order, &capability, &issuer, &jti); err != nil {
				rows.Close()
				return 0, 0, err
			}
			keys = append(keys, order, capability)
			purged = append(purged, audit.Event{Action: audit.Purged, Issuer: issuer, JTI: jti,
				Kind: token.Confirmation.Name(), OrderID: order})
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(keys) == 0 {
			return 0, 0, err
		}
		pairs := make([]string, len(keys)/2)
		for i := range pairs {
			pairs[i] = fmt.Sprintf("($%d, $%d)", 2*i+1, 2*i+2)
		}
		which := `sealed_token <> '' AND (order_id, capability) IN (VALUES ` + strings.Join(pairs, ", ") + `)`
		query := `UPDATE steps SET sealed_token = '' WHERE ` + which
		if s.db.Dialect() == sqldb.SQLite {
			// An UPDATE that shrinks a row leaves SQLite's page as it was,
			// its space unused (a page is rebalanced on delete, not on a
			// shrinking update), and new steps go to new pages at the end:
			// the file would grow by the tokens anyway. REPLACE deletes
			// each row and inserts it again without its token, which
			// merges the emptied pages and frees them for reuse.
			query = `REPLACE INTO steps (order_id, ` + stepColumns + `) SELECT order_id, ` +
				strings.Replace(stepColumns, "sealed_token", "''", 1) + ` FROM steps WHERE ` + which
		}
		res, err := tx.ExecContext(ctx, query, keys...)
		// The rows picked are this transaction's (locked on PostgreSQL,
		// the one writer on SQLite): each token dropped is recorded with
		// the drop.
		for _, e := range purged {
			if err == nil {
				err = s.trail.Append(ctx, tx, e)
			}
		}
		return affected(res, err, len(pairs))
	}, nil)
	if err != nil {
		return n, fmt.Errorf("orderprocessing: drop sealed tokens: %w", err)
	}
	return n, nil
}

// OrdersPurged counts what PurgeOrders deleted, by table.
type OrdersPurged struct {
	Orders, Steps, Checkouts int64
}

// PurgeOrders deletes the orders that ended COMPLETED or FAILED before
// before (their last update), with their steps and their checkout.
// Orders NEEDS_OPERATOR or unfinished are never purged.
func (s *Store) PurgeOrders(ctx context.Context, before time.Time) (OrdersPurged, error) {
	var total, p OrdersPurged
	_, err := s.batches(ctx, func(ctx context.Context, tx *sql.Tx) (int64, int, error) {
		p = OrdersPurged{}
		rows, err := tx.QueryContext(ctx, `SELECT id, checkout_id FROM orders WHERE status IN ($1, $2) AND updated_at < $3
			LIMIT $4`+s.skipLocked(), append(finished, before.UTC(), PurgeBatch)...)
		if err != nil {
			return 0, 0, err
		}
		var orders, checkouts []any
		for rows.Next() {
			var id, checkout string
			if err := rows.Scan(&id, &checkout); err != nil {
				rows.Close()
				return 0, 0, err
			}
			orders, checkouts = append(orders, id), append(checkouts, checkout)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(orders) == 0 {
			return 0, 0, err
		}
		// Steps first, then the orders, then their checkouts: each
		// references the next. The orders' rows are locked (PostgreSQL)
		// or the database is (SQLite), and a final order does not change,
		// so the steps deleted are those of orders that go.
		var q OrdersPurged
		res, err := tx.ExecContext(ctx, `DELETE FROM steps WHERE order_id IN (`+marks(1, len(orders))+`)`, orders...)
		if q.Steps, _, err = affected(res, err, 0); err != nil {
			return 0, 0, err
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM orders WHERE status IN ($1, $2) AND updated_at < $3 AND id IN (`+
			marks(4, len(orders))+`)`, append(append(finished, before.UTC()), orders...)...)
		if q.Orders, _, err = affected(res, err, 0); err != nil {
			return 0, 0, err
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM checkouts WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_id = checkouts.id)
			AND id IN (`+marks(1, len(checkouts))+`)`, checkouts...)
		if q.Checkouts, _, err = affected(res, err, 0); err != nil {
			return 0, 0, err
		}
		p = q
		return q.Orders, len(orders), nil
	}, func() {
		total.Orders, total.Steps, total.Checkouts = total.Orders+p.Orders, total.Steps+p.Steps, total.Checkouts+p.Checkouts
	})
	if err != nil {
		return total, fmt.Errorf("orderprocessing: purge orders: %w", err)
	}
	return total, nil
}

// batches runs batch, each time in a transaction of its own (run again
// when the database asks for a retry), until it picks fewer than
// PurgeBatch rows, and returns the sum of what the committed batches
// counted. committed, when set, runs after each commit: what a batch
// counted in a transaction that was rolled back and run again counts once.
func (s *Store) batches(ctx context.Context, batch func(ctx context.Context, tx *sql.Tx) (n int64, picked int, err error), committed func()) (int64, error) {
	var total int64
	for {
		var n int64
		var picked int
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			n, picked, err = batch(ctx, tx)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if committed != nil {
			committed()
		}
		if picked < PurgeBatch {
			return total, nil
		}
	}
}

// pick runs query, which selects one column of ids from a single table,
// locking the rows it returns on PostgreSQL (skipping those another
// transaction holds).
func (s *Store) pick(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]any, error) {
	rows, err := tx.QueryContext(ctx, query+s.skipLocked(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// skipLocked is the locking clause of a purge's SELECT on PostgreSQL:
// FOR UPDATE SKIP LOCKED. SQLite has none and needs none.
func (s *Store) skipLocked() string {
	if s.db.Dialect() == sqldb.Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// affected returns the rows res affected and picked.
func affected(res sql.Result, err error, picked int) (int64, int, error) {
	if err != nil {
		return 0, 0, err
	}
	n, err := res.RowsAffected()
	return n, picked, err
}

// marks returns "$from, ..., $from+n-1".
func marks(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}
