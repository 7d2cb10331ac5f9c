package audit

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// MigrationSet is the sqldb migration set of the audit tables, apart from
// the service's own.
const MigrationSet = "audit"

//go:embed *.sql
var migrationFiles embed.FS

// Migrations returns the DDL of the audit tables as numbered files for
// sqldb.Migrate, to be applied with sqldb.MigrationSet([MigrationSet]).
func Migrations() fs.FS { return migrationFiles }

// Migrate creates or upgrades the audit tables in db.
func Migrate(ctx context.Context, db *sqldb.DB) error {
	return sqldb.Migrate(ctx, db, migrationFiles, sqldb.MigrationSet(MigrationSet))
}

// MaxEvents bounds what one read returns: a token has a handful of events,
// an order a few dozen.
const MaxEvents = 1000

// Log is a service's audit trail in its database. It is safe for
// concurrent use, by several replicas too.
type Log struct {
	db *sqldb.DB
}

// New returns the log kept in db, whose audit tables [Migrate] created.
func New(db *sqldb.DB) *Log { return &Log{db: db} }

const columns = `service, seq, at_ms, action, iss, jti, kind, subject, checkout_id, order_id, txn, refused_check, exp_ms, prev_hash, hash`

// Tx is the caller's transaction: a *sql.Tx, or sqldb.DB.Cached of one
// (never of nil: an append outside a transaction would move the head
// apart from its event).
type Tx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Append adds e to its service's chain inside tx, the caller's transaction
// that applies the effect e records: it takes the next sequence number,
// chains e after the head, and moves the head, so that both commit or roll
// back with the effect. It returns e with Seq, PrevHash and Hash set.
// Appends of one service are serialized until tx ends.
func (l *Log) Append(ctx context.Context, q Tx, e Event) (Event, error) {
	out, err := l.AppendAll(ctx, q, e)
	if err != nil {
		return Event{}, err
	}
	return out[0], nil
}

// maxInsertRows bounds the rows of one INSERT of [Log.AppendAll]: a few
// hundred bind parameters at most, and a handful of statement texts (one
// per row count) in the statement cache.
const maxInsertRows = 16

// AppendAll is [Log.Append] of several events of one service, recorded by
// one transaction: they take consecutive sequence numbers, in the order
// given, with one move of the head (three statements for up to
// [maxInsertRows] events, instead of three per event), and chain exactly
// as that many Appends would. It returns the events with Seq, PrevHash
// and Hash set. Events of several services need an AppendAll each.
func (l *Log) AppendAll(ctx context.Context, q Tx, events ...Event) ([]Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	service := events[0].Service
	for _, e := range events {
		if e.Service == "" || !e.Action.Valid() || e.At.IsZero() {
			return nil, fmt.Errorf("%w: service %q, action %q, at %v", ErrInvalidEvent, e.Service, e.Action, e.At)
		}
		if e.Service != service {
			return nil, fmt.Errorf("%w: one AppendAll of services %q and %q", ErrInvalidEvent, service, e.Service)
		}
	}
	// Taking the sequence numbers locks the head row until tx ends (on
	// SQLite the transaction holds the write lock already); the hash it
	// returns is still the previous event's. The head row is created by a
	// service's first append only, saving a statement on every other one
	// (the audit trail's cost per checkout, BENCHMARKS.md).
	n := int64(len(events))
	var last int64
	var prev string
	next := func() error {
		return q.QueryRowContext(ctx, `UPDATE audit_heads SET seq = seq + $2 WHERE service = $1 RETURNING seq, hash`,
			service, n).Scan(&last, &prev)
	}
	err := next()
	if errors.Is(err, sql.ErrNoRows) {
		// A concurrent first append waits here for the other to commit
		// (PostgreSQL), then finds its row.
		if _, err := q.ExecContext(ctx, `INSERT INTO audit_heads (service, seq, hash, anchor_seq, anchor_hash)
			VALUES ($1, 0, '', 0, '') ON CONFLICT (service) DO NOTHING`, service); err != nil {
			return nil, fmt.Errorf("audit: head: %w", err)
		}
		err = next()
	}
	if err != nil {
		return nil, fmt.Errorf("audit: head: %w", err)
	}
	out := make([]Event, len(events))
	for i, e := range events {
		e.Seq = last - n + 1 + int64(i)
		e.At = fromMillis(millis(e.At))
		e.ExpiresAt = fromMillis(millis(e.ExpiresAt))
		e.PrevHash = prev
		e.Hash = e.Digest(prev)
		out[i], prev = e, e.Hash
	}
	for rest := out; len(rest) > 0; {
		batch := rest[:min(len(rest), maxInsertRows)]
		rest = rest[len(batch):]
		args := make([]any, 0, len(batch)*insertColumns)
		for _, e := range batch {
			args = append(args, e.Service, e.Seq, millis(e.At), string(e.Action), e.Issuer, e.JTI, e.Kind, e.Subject,
				e.CheckoutID, e.OrderID, e.Txn, e.Check, millis(e.ExpiresAt), e.PrevHash, e.Hash)
		}
		if _, err := q.ExecContext(ctx, insertSQL[len(batch)], args...); err != nil {
			return nil, fmt.Errorf("audit: append: %w", err)
		}
	}
	if _, err := q.ExecContext(ctx, `UPDATE audit_heads SET hash = $2 WHERE service = $1`, service, prev); err != nil {
		return nil, fmt.Errorf("audit: head: %w", err)
	}
	return out, nil
}

// insertColumns is the number of columns of an event row.
const insertColumns = 15

// insertSQL[n] inserts n events, for n from 1 to maxInsertRows.
var insertSQL = func() []string {
	texts := make([]string, maxInsertRows+1)
	for n := 1; n <= maxInsertRows; n++ {
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_events (` + columns + `) VALUES `)
		for r := range n {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for c := range insertColumns {
				if c > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "$%d", r*insertColumns+c+1)
			}
			b.WriteByte(')')
		}
		texts[n] = b.String()
	}
	return texts
}()

// Record appends e in a transaction of its own, for an event with no
// effect to share a transaction with (a refusal).
func (l *Log) Record(ctx context.Context, e Event) (Event, error) {
	var out Event
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = l.Append(ctx, l.db.Cached(tx), e)
		return err
	})
	return out, err
}

// An empty id names nothing: events without one are not its events, so
// the reads below return none for it, and the indexes leave them out (each
// read repeats its index's condition, id <> '', which is how SQLite and
// PostgreSQL know that the partial index serves it).

// ByJTI returns the events of the token (iss, jti), oldest first.
func (l *Log) ByJTI(ctx context.Context, iss, jti string) ([]Event, error) {
	if jti == "" {
		return nil, nil
	}
	return l.query(ctx, `WHERE iss = $1 AND jti = $2 AND jti <> ''`+byTime, iss, jti)
}

// ByOrder returns the events of an order's tokens, oldest first.
func (l *Log) ByOrder(ctx context.Context, orderID string) ([]Event, error) {
	if orderID == "" {
		return nil, nil
	}
	return l.query(ctx, `WHERE order_id = $1 AND order_id <> ''`+byTime, orderID)
}

// CheckoutTokens returns the events of the checkout tokens (kind
// "checkout") of a checkout, oldest first: OrderProcessing's issued, a
// domain's refused.
func (l *Log) CheckoutTokens(ctx context.Context, checkoutID string) ([]Event, error) {
	if checkoutID == "" {
		return nil, nil
	}
	return l.query(ctx, `WHERE checkout_id = $1 AND kind = 'checkout'`+byTime, checkoutID)
}

// ByTxn returns the events caused by one request, oldest first.
func (l *Log) ByTxn(ctx context.Context, txn string) ([]Event, error) {
	if txn == "" {
		return nil, nil
	}
	return l.query(ctx, `WHERE txn = $1 AND txn <> ''`+byTime, txn)
}

// byTime orders the events of several services by time, then each
// service's by chain position.
const byTime = ` ORDER BY at_ms, service, seq`

// query reads at most MaxEvents events: where is the WHERE and ORDER BY
// clauses.
func (l *Log) query(ctx context.Context, where string, args ...any) ([]Event, error) {
	rows, err := l.db.Cached(nil).QueryContext(ctx, `SELECT `+columns+` FROM audit_events `+where+
		fmt.Sprintf(` LIMIT %d`, MaxEvents), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	return out, nil
}

func scan(rows *sql.Rows) (Event, error) {
	var e Event
	var at, exp int64
	var action string
	if err := rows.Scan(&e.Service, &e.Seq, &at, &action, &e.Issuer, &e.JTI, &e.Kind, &e.Subject,
		&e.CheckoutID, &e.OrderID, &e.Txn, &e.Check, &exp, &e.PrevHash, &e.Hash); err != nil {
		return Event{}, fmt.Errorf("audit: read: %w", err)
	}
	e.Action, e.At, e.ExpiresAt = Action(action), fromMillis(at), fromMillis(exp)
	return e, nil
}

// Head is the state of a service's chain.
type Head struct {
	// Seq and Hash are the last event appended; 0 and "" for none.
	Seq  int64
	Hash string
	// AnchorSeq and AnchorHash are the last event purged; 0 and "" when
	// none was.
	AnchorSeq  int64
	AnchorHash string
}

// Verify recomputes the chain of service from its anchor to its head, in
// pages, and returns the head it verified. A chain that does not verify is
// [ErrTampered], naming the first sequence number that fails.
func (l *Log) Verify(ctx context.Context, service string) (Head, error) {
	var h Head
	err := l.db.Cached(nil).QueryRowContext(ctx, `SELECT seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE service = $1`,
		service).Scan(&h.Seq, &h.Hash, &h.AnchorSeq, &h.AnchorHash)
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("audit: head: %w", err)
	}
	seq, hash := h.AnchorSeq, h.AnchorHash
	for seq < h.Seq {
		page, err := l.query(ctx, `WHERE service = $1 AND seq > $2 ORDER BY seq`, service, seq)
		if err != nil {
			return Head{}, err
		}
		if len(page) == 0 {
			return Head{}, fmt.Errorf("%w: %s: the events after event %d are missing (the head is at %d)", ErrTampered, service, seq, h.Seq)
		}
		for _, e := range page {
			if e.Seq != seq+1 || e.PrevHash != hash || e.Hash != e.Digest(hash) {
				return Head{}, fmt.Errorf("%w: %s: event %d", ErrTampered, service, seq+1)
			}
			seq, hash = e.Seq, e.Hash
		}
	}
	if seq != h.Seq || hash != h.Hash {
		return Head{}, fmt.Errorf("%w: %s: the head (%d) does not match the last event (%d)", ErrTampered, service, h.Seq, seq)
	}
	return h, nil
}

// Purge deletes the oldest events of service, up to the last one that
// happened before cutoff (a prefix of the chain: an event appended later
// with an earlier time, from a replica with a slower clock, is kept until
// every event before it goes), and moves the chain's anchor to the last one
// deleted, in one transaction. It returns the number of events deleted.
func (l *Log) Purge(ctx context.Context, service string, cutoff time.Time) (int64, error) {
	var n int64
	err := l.db.Tx(ctx, func(tx *sql.Tx) error {
		q := l.db.Cached(tx)
		// The first event kept is found by walking the chain from its
		// oldest event (the primary key, service then seq) to the first
		// one at or after cutoff: events are appended in about the order
		// of their times, so the walk reads about as many events as the
		// purge deletes, and the trail needs no index by time.
		var first int64
		var upTo sql.NullInt64
		err := q.QueryRowContext(ctx, `SELECT seq FROM audit_events WHERE service = $1 AND at_ms >= $2 ORDER BY seq LIMIT 1`,
			service, millis(cutoff)).Scan(&first)
		switch {
		case err == nil:
			upTo = sql.NullInt64{Int64: first - 1, Valid: true}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("audit: purge: %w", err)
		default: // every event is older than cutoff
			if err := q.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_events WHERE service = $1`, service).Scan(&upTo); err != nil {
				return fmt.Errorf("audit: purge: %w", err)
			}
		}
		if !upTo.Valid || upTo.Int64 < 1 {
			return nil
		}
		var last string
		err = q.QueryRowContext(ctx, `SELECT hash FROM audit_events WHERE service = $1 AND seq = $2`, service, upTo.Int64).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // purged already
		}
		if err != nil {
			return fmt.Errorf("audit: purge: %w", err)
		}
		res, err := q.ExecContext(ctx, `DELETE FROM audit_events WHERE service = $1 AND seq <= $2`, service, upTo.Int64)
		if err != nil {
			return fmt.Errorf("audit: purge: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("audit: purge: %w", err)
		}
		if _, err := q.ExecContext(ctx, `UPDATE audit_heads SET anchor_seq = $2, anchor_hash = $3 WHERE service = $1 AND anchor_seq < $2`,
			service, upTo.Int64, last); err != nil {
			return fmt.Errorf("audit: purge: %w", err)
		}
		return nil
	})
	return n, err
}
