package capabilitysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// PurgeBatch is how many tokens one [Purge] transaction removes at most;
// Purge runs transactions while a batch comes back full.
const PurgeBatch = 1000

// Purged counts the rows a [Purge] deleted, by table.
type Purged struct {
	Confirmations, Exercises int64
}

// Rows returns p by table name, for a purge task's metrics.
func (p Purged) Rows() map[string]int64 {
	return map[string]int64{"confirmations": p.Confirmations, "exercises": p.Exercises}
}

// Purge deletes a domain's records of the tokens that nothing can use any
// more: every confirmation whose token expired before before, with its
// exercise row if it has one, when that row is final (applied or
// compensated) and last changed (applied_at, compensated_at) before before
// too. The caller passes before = now - retention: a record goes once the
// retention has passed since the later of its token's expiry and its
// exercise's last change.
//
// Why that is safe: a confirmation and its exercise serve idempotent
// retries of Confirm (by idempotency key), Exercise and Compensate of the
// token. A retention longer than the verifier's leeway (at most 30 s) means
// no Exercise can reach a purged record: the token is refused as expired
// first. A Compensate is not bound by exp; one that reaches a purged token
// finds no confirmation and is refused as capability.ErrMismatch
// (PermissionDenied, "no confirmation with this jti"), a refusal for good:
// the orchestrator, which compensates only orders it placed and finishes
// them within seconds, then holds the order for an operator
// (NEEDS_OPERATOR) rather than being told that an effect it cannot see was
// undone. A Confirm retried with a purged record's idempotency key issues a
// new token. The domain's own records of the effect (a coupon's redemption,
// a ledger entry) stay: only the token's two rows go.
//
// It deletes in transactions of at most [PurgeBatch] tokens: exercises
// rows first, then their confirmations (exercises references them). It is
// idempotent and safe from several replicas at once: on PostgreSQL each
// batch is chosen with FOR UPDATE SKIP LOCKED, so concurrent purges take
// disjoint batches, a row changed by a concurrent Compensate is re-checked
// before it is deleted (and kept: it changed now), and a confirmation
// voided meanwhile keeps its new exercise row and so stays; on SQLite the
// write lock serialises them. Each row is counted by the purge that
// deleted it. On failure it returns what it deleted so far.
func Purge(ctx context.Context, db *sqldb.DB, before time.Time) (Purged, error) {
	return purge(ctx, db, before, nil)
}

// Purge is [Purge] that also records, in the transaction of each batch, a
// purged event in l.Trail for every token whose confirmation it deleted.
func (l Ledger[C, X]) Purge(ctx context.Context, db *sqldb.DB, before time.Time) (Purged, error) {
	return purge(ctx, db, before, l.Trail)
}

// PurgeTrail deletes the audit events of l.Trail's service that happened
// before before (audit.Log.Purge, which keeps the rest of the chain
// verifiable) and returns how many went; without a Trail, none.
func (l Ledger[C, X]) PurgeTrail(ctx context.Context, before time.Time) (int64, error) {
	if l.Trail == nil {
		return 0, nil
	}
	return l.Trail.Log.Purge(ctx, l.Trail.Service, before)
}

func purge(ctx context.Context, db *sqldb.DB, before time.Time, trail *audit.Trail) (Purged, error) {
	var total Purged
	for {
		var n Purged
		var batch int
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			n, batch, err = purgeBatch(ctx, db.Dialect(), tx, before.UTC(), trail)
			return err
		})
		total.Confirmations += n.Confirmations
		total.Exercises += n.Exercises
		if err != nil {
			return total, fmt.Errorf("capabilitysql: purge: %w", err)
		}
		if batch < PurgeBatch {
			return total, nil
		}
	}
}

// final are the exercise states after which nothing changes a row but a
// compensation (applied) or nothing at all (compensated).
var final = []any{capability.ExerciseApplied, capability.ExerciseCompensated}

// purgeBatch purges one batch in tx and returns what it deleted and how
// many tokens it chose.
func purgeBatch(ctx context.Context, dialect sqldb.Dialect, tx *sql.Tx, before time.Time, trail *audit.Trail) (Purged, int, error) {
	lock := ""
	if dialect == sqldb.Postgres {
		lock = ` FOR UPDATE OF c SKIP LOCKED`
	}
	rows, err := tx.QueryContext(ctx, `SELECT c.jti FROM confirmations c WHERE c.expires_at < $1
		AND NOT EXISTS (SELECT 1 FROM exercises x WHERE x.jti = c.jti
			AND (x.state NOT IN ($2, $3) OR x.applied_at >= $1 OR x.compensated_at >= $1))
		LIMIT $4`+lock, append([]any{before}, append(final, PurgeBatch)...)...)
	if err != nil {
		return Purged{}, 0, err
	}
	var jtis []any
	for rows.Next() {
		var jti string
		if err := rows.Scan(&jti); err != nil {
			rows.Close()
			return Purged{}, 0, err
		}
		jtis = append(jtis, jti)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(jtis) == 0 {
		return Purged{}, 0, err
	}
	// The conditions are repeated on the rows deleted: on PostgreSQL a row
	// a concurrent transaction changed after the SELECT is re-checked
	// against them once that transaction commits.
	in := placeholders(4, len(jtis))
	args := append(append([]any{before}, final...), jtis...)
	var p Purged
	res, err := tx.ExecContext(ctx, `DELETE FROM exercises WHERE state IN ($2, $3)
		AND (applied_at IS NULL OR applied_at < $1) AND (compensated_at IS NULL OR compensated_at < $1)
		AND jti IN (`+in+`)`, args...)
	if err != nil {
		return p, 0, err
	}
	if p.Exercises, err = res.RowsAffected(); err != nil {
		return p, 0, err
	}
	gone, err := tx.QueryContext(ctx, `DELETE FROM confirmations WHERE expires_at < $1
		AND NOT EXISTS (SELECT 1 FROM exercises x WHERE x.jti = confirmations.jti)
		AND jti IN (`+placeholders(2, len(jtis))+`) RETURNING jti`, append([]any{before}, jtis...)...)
	if err != nil {
		return p, 0, err
	}
	var deleted []string
	for gone.Next() {
		var jti string
		if err := gone.Scan(&jti); err != nil {
			gone.Close()
			return p, 0, err
		}
		deleted = append(deleted, jti)
	}
	gone.Close()
	if err := gone.Err(); err != nil {
		return p, 0, err
	}
	p.Confirmations = int64(len(deleted))
	if trail != nil {
		for _, jti := range deleted {
			if err := trail.Append(ctx, tx, audit.Event{Action: audit.Purged, Issuer: trail.Service, JTI: jti}); err != nil {
				return p, 0, err
			}
		}
	}
	return p, len(jtis), nil
}

// placeholders returns "$from, $from+1, ..." for n arguments.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}
