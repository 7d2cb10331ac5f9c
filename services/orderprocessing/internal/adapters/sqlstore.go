// Package adapters holds OrderProcessing's store on SQL: SQLite (the
// embedded default) and PostgreSQL through one set of statements, with
// dialect-specific DDL in migrations/. Consumed jtis live in the replay
// package's table, written in the transaction that stores the order.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

//go:embed migrations/*.sql
var migrations embed.FS

// MigrationSet names OrderProcessing's migrations in schema_migrations.
const MigrationSet = "orderprocessing"

// Store is the SQL implementation of domain.Repository.
type Store struct {
	db    *sqldb.DB
	guard *replay.Guard
	trail audit.Trail
}

var _ domain.Repository = (*Store)(nil)

// NewStore migrates db to OrderProcessing's schema (and the replay table) and
// returns the store; guard records consumed jtis.
func NewStore(ctx context.Context, db *sqldb.DB, guard *replay.Guard) (*Store, error) {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := sqldb.Migrate(ctx, db, files, sqldb.MigrationSet(MigrationSet)); err != nil {
		return nil, fmt.Errorf("orderprocessing: migrate: %w", err)
	}
	if err := replay.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("orderprocessing: migrate replay: %w", err)
	}
	if err := audit.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("orderprocessing: migrate audit: %w", err)
	}
	return &Store{db: db, guard: guard, trail: audit.Trail{Log: audit.New(db), Service: AuditService, Txn: authn.TxnFrom}}, nil
}

// AuditService is OrderProcessing's name in the audit trail: its
// workload name.
const AuditService = capability.Audience

// LimitRefusals caps the refusals the store records per presenting user
// with b (see audit.Trail.Refused). Call it before use.
func (s *Store) LimitRefusals(b *audit.RefusalBudget) { s.trail.Refusals = b }

// Audit returns OrderProcessing's audit trail, for the admin's reads.
func (s *Store) Audit() *audit.Log { return s.trail.Log }

// Refused implements app.Refusals: each refused token is recorded in a
// transaction of its own (nothing else happened), one event with no
// issuer nor jti when its claims could not be trusted; beyond the user's
// budget of recorded refusals, counted only (audit.Trail.Refused).
func (s *Store) Refused(ctx context.Context, userID, checkoutID string, r *domain.RefusedToken) error {
	ids := r.Tokens
	if len(ids) == 0 {
		ids = []domain.TokenID{{}}
	}
	for _, id := range ids {
		if err := s.trail.Refused(ctx, audit.Event{Issuer: id.Issuer, JTI: id.JTI,
			Kind: token.Confirmation.Name(), Subject: userID, CheckoutID: checkoutID, Check: r.Check}); err != nil {
			return err
		}
	}
	return nil
}

type scanner interface{ Scan(...any) error }

// Products implements domain.Repository.
func (s *Store) Products(ctx context.Context) (map[string]domain.Product, error) {
	rows, err := s.db.Cached(nil).QueryContext(ctx, `SELECT sku, name, description, price_minor, currency FROM products`)
	if err != nil {
		return nil, fmt.Errorf("orderprocessing: products: %w", err)
	}
	defer rows.Close()
	out := map[string]domain.Product{}
	for rows.Next() {
		var p domain.Product
		if err := rows.Scan(&p.SKU, &p.Name, &p.Description, &p.UnitPrice.AmountMinor, &p.UnitPrice.Currency); err != nil {
			return nil, fmt.Errorf("orderprocessing: products: %w", err)
		}
		out[p.SKU] = p
	}
	return out, rows.Err()
}

const checkoutColumns = `id, user_id, lines, total_minor, currency, status, order_id, idempotency_key, created_at, expires_at`

func scanCheckout(row scanner) (domain.Checkout, error) {
	var c domain.Checkout
	var lines string
	err := row.Scan(&c.ID, &c.UserID, &lines, &c.Total.AmountMinor, &c.Total.Currency, &c.Status, &c.OrderID,
		&c.IdempotencyKey, &c.CreatedAt, &c.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return c, domain.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	return c, json.Unmarshal([]byte(lines), &c.Lines)
}

// CreateCheckout implements domain.Repository.
func (s *Store) CreateCheckout(ctx context.Context, c domain.Checkout, tok domain.IssuedToken) (domain.Checkout, bool, error) {
	lines, err := json.Marshal(c.Lines)
	if err != nil {
		return domain.Checkout{}, false, err
	}
	created := false
	err = s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := s.db.Cached(sqlTx)
		res, err := tx.ExecContext(ctx, `INSERT INTO checkouts (`+checkoutColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key <> '' DO NOTHING`,
			c.ID, c.UserID, string(lines), c.Total.AmountMinor, c.Total.Currency, c.Status, c.OrderID, c.IdempotencyKey,
			c.CreatedAt.UTC(), c.ExpiresAt.UTC())
		if err != nil {
			return fmt.Errorf("orderprocessing: create checkout: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil || n != 1 {
			return err
		}
		created = true
		if tok.JTI == "" {
			return nil
		}
		return s.trail.Append(ctx, tx, checkoutIssued(c, tok))
	})
	if err != nil || created {
		return c, created, err
	}
	prev, err := scanCheckout(s.db.Cached(nil).QueryRowContext(ctx,
		`SELECT `+checkoutColumns+` FROM checkouts WHERE user_id = $1 AND idempotency_key = $2`, c.UserID, c.IdempotencyKey))
	return prev, false, err
}

// CheckoutTokenIssued implements domain.Repository: the event in a
// transaction of its own.
func (s *Store) CheckoutTokenIssued(ctx context.Context, c domain.Checkout, tok domain.IssuedToken) error {
	return s.trail.Record(ctx, checkoutIssued(c, tok))
}

func checkoutIssued(c domain.Checkout, tok domain.IssuedToken) audit.Event {
	return audit.Event{Action: audit.Issued, Issuer: tok.Issuer, JTI: tok.JTI, Kind: token.Checkout.Name(),
		Subject: c.UserID, CheckoutID: c.ID, ExpiresAt: tok.ExpiresAt}
}

// Checkout implements domain.Repository.
func (s *Store) Checkout(ctx context.Context, id string) (domain.Checkout, error) {
	return scanCheckout(s.db.Cached(nil).QueryRowContext(ctx, `SELECT `+checkoutColumns+` FROM checkouts WHERE id = $1`, id))
}

// CancelCheckout implements domain.Repository.
func (s *Store) CancelCheckout(ctx context.Context, id string, _ time.Time) (domain.Checkout, error) {
	var out domain.Checkout
	err := s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := s.db.Cached(sqlTx) // statements prepared once, run in sqlTx
		c, err := scanCheckout(tx.QueryRowContext(ctx, `SELECT `+checkoutColumns+` FROM checkouts WHERE id = $1`+s.forUpdate(), id))
		if err != nil {
			return err
		}
		switch c.Status {
		case domain.CheckoutPlaced:
			return fmt.Errorf("%w: an order was placed for it", domain.ErrCheckoutClosed)
		case domain.CheckoutCancelled:
		default: // open or expired: either way no order can be placed any more
			c.Status = domain.CheckoutCancelled
			if _, err := tx.ExecContext(ctx, `UPDATE checkouts SET status = $1 WHERE id = $2`, c.Status, id); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	return out, err
}

// forUpdate locks selected rows on PostgreSQL; SQLite's write transactions
// already hold the database lock from BEGIN.
func (s *Store) forUpdate() string {
	if s.db.Dialect() == sqldb.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

const orderColumns = `id, checkout_id, user_id, lines, total_minor, currency, status, failure_reason, idempotency_key, version, created_at, updated_at, operator_note, txn, trace_parent`

func scanOrder(row scanner) (domain.Order, error) {
	var o domain.Order
	var lines string
	err := row.Scan(&o.ID, &o.CheckoutID, &o.UserID, &lines, &o.Total.AmountMinor, &o.Total.Currency, &o.Status,
		&o.FailureReason, &o.IdempotencyKey, &o.Version, &o.CreatedAt, &o.UpdatedAt, &o.OperatorNote, &o.Txn, &o.TraceParent)
	if errors.Is(err, sql.ErrNoRows) {
		return o, domain.ErrNotFound
	}
	if err != nil {
		return o, err
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, json.Unmarshal([]byte(lines), &o.Lines)
}

const stepColumns = `capability, issuer, stage, state, settlement_minor, currency, jti, expires_at, sealed_token, reference, attempts, last_error`

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadSteps(ctx context.Context, q querier, o *domain.Order) error {
	rows, err := q.QueryContext(ctx, `SELECT `+stepColumns+` FROM steps WHERE order_id = $1`, o.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	o.Steps = o.Steps[:0]
	for rows.Next() {
		var st domain.Step
		if err := rows.Scan(&st.Capability, &st.Issuer, &st.Stage, &st.State, &st.Settlement.AmountMinor, &st.Settlement.Currency,
			&st.JTI, &st.ExpiresAt, &st.SealedToken, &st.Reference, &st.Attempts, &st.LastError); err != nil {
			return err
		}
		st.ExpiresAt = st.ExpiresAt.UTC()
		o.Steps = append(o.Steps, st)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	domain.SortSteps(o.Steps)
	return nil
}

// PlaceOrder implements domain.Repository.
func (s *Store) PlaceOrder(ctx context.Context, o domain.Order, now time.Time) (domain.Order, bool, error) {
	out, created, err := s.placeOrder(ctx, o, now)
	if err != nil && sqldb.IsUniqueViolation(err) {
		// A concurrent request with the same key (or for the same checkout)
		// committed first: answer as its retry would be answered. Once:
		// a conflict that remains is not a race (an order id already
		// used, two steps of one capability) and retrying cannot end it.
		out, created, err = s.placeOrder(ctx, o, now)
	}
	if err != nil {
		return domain.Order{}, false, fmt.Errorf("orderprocessing: place order: %w", err)
	}
	if created {
		for _, st := range o.Steps {
			s.guard.Mark(st.Issuer, st.JTI, st.ExpiresAt)
		}
	}
	return out, created, nil
}

// byKey reads the order placed by user with idempotency key, steps
// included; domain.ErrNotFound when there is none.
func byKey(ctx context.Context, tx querier, user, key string) (domain.Order, error) {
	o, err := scanOrder(tx.QueryRowContext(ctx,
		`SELECT `+orderColumns+` FROM orders WHERE user_id = $1 AND idempotency_key = $2`, user, key))
	if err != nil {
		return o, err
	}
	return o, loadSteps(ctx, tx, &o)
}

func (s *Store) placeOrder(ctx context.Context, o domain.Order, now time.Time) (domain.Order, bool, error) {
	var out domain.Order
	created := false
	err := s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := s.db.Cached(sqlTx) // statements prepared once, run in sqlTx
		prev, err := byKey(ctx, tx, o.UserID, o.IdempotencyKey)
		if err == nil {
			out = prev
			return nil
		}
		if !errors.Is(err, domain.ErrNotFound) {
			return err
		}
		co, err := scanCheckout(tx.QueryRowContext(ctx, `SELECT `+checkoutColumns+` FROM checkouts WHERE id = $1`+s.forUpdate(), o.CheckoutID))
		if err != nil {
			return err
		}
		if co.StatusAt(now) != domain.CheckoutOpen {
			// A concurrent request with the same key may have placed the
			// checkout while this one waited for its lock: its order is
			// this request's answer too. The read after the lock sees
			// what that request committed (read committed).
			if prev, err := byKey(ctx, tx, o.UserID, o.IdempotencyKey); err == nil {
				out = prev
				return nil
			} else if !errors.Is(err, domain.ErrNotFound) {
				return err
			}
			return fmt.Errorf("%w: the checkout is %s", domain.ErrCheckoutClosed, statusName(co.StatusAt(now)))
		}
		consumed := make([]audit.Event, 0, len(o.Steps))
		for _, st := range o.Steps {
			if err := s.guard.Consume(ctx, sqlTx, st.Issuer, st.JTI, st.ExpiresAt); err != nil {
				if errors.Is(err, replay.ErrReplayed) {
					return &domain.RefusedToken{Tokens: []domain.TokenID{{Issuer: st.Issuer, JTI: st.JTI}}, Check: token.Reason(err), Err: err}
				}
				return err
			}
			// Accepting a token and consuming its jti are one act here:
			// OrderProcessing accepts a token only by consuming it, with
			// the order.
			consumed = append(consumed, audit.Event{Action: audit.Consumed, Issuer: st.Issuer, JTI: st.JTI,
				Kind: token.Confirmation.Name(), Subject: o.UserID, CheckoutID: o.CheckoutID, OrderID: o.ID,
				ExpiresAt: st.ExpiresAt})
		}
		// The order's consumed events, appended together: one move of the
		// chain's head for all of them (the trail's cost per checkout,
		// BENCHMARKS.md).
		if err := s.trail.AppendAll(ctx, tx, consumed...); err != nil {
			return err
		}
		lines, err := json.Marshal(o.Lines)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders (`+orderColumns+`, lease_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			o.ID, o.CheckoutID, o.UserID, string(lines), o.Total.AmountMinor, o.Total.Currency, o.Status, o.FailureReason,
			o.IdempotencyKey, o.Version, o.CreatedAt.UTC(), o.UpdatedAt.UTC(), o.OperatorNote, o.Txn, o.TraceParent, time.Unix(0, 0).UTC()); err != nil {
			return err
		}
		for _, st := range o.Steps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO steps (order_id, `+stepColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				o.ID, st.Capability, st.Issuer, st.Stage, st.State, st.Settlement.AmountMinor, st.Settlement.Currency,
				st.JTI, st.ExpiresAt.UTC(), st.SealedToken, st.Reference, st.Attempts, st.LastError); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE checkouts SET status = $1, order_id = $2 WHERE id = $3`,
			domain.CheckoutPlaced, o.ID, o.CheckoutID); err != nil {
			return err
		}
		out, created = o, true
		return nil
	})
	return out, created, err
}

func statusName(s domain.CheckoutStatus) string {
	switch s {
	case domain.CheckoutPlaced:
		return "placed"
	case domain.CheckoutCancelled:
		return "cancelled"
	case domain.CheckoutExpired:
		return "expired"
	}
	return "open"
}

// Order implements domain.Repository.
func (s *Store) Order(ctx context.Context, id string) (domain.Order, error) {
	o, err := scanOrder(s.db.Cached(nil).QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	if err != nil {
		return o, err
	}
	return o, loadSteps(ctx, s.db.Cached(nil), &o)
}

// Orders implements domain.Repository.
func (s *Store) Orders(ctx context.Context, userID, after string, limit int) ([]domain.Order, error) {
	q := `SELECT ` + orderColumns + ` FROM orders WHERE user_id = $1 ORDER BY seq DESC LIMIT $2`
	args := []any{userID, limit}
	if after != "" {
		q = `SELECT ` + orderColumns + ` FROM orders WHERE user_id = $1
			AND seq < (SELECT seq FROM orders WHERE id = $3 AND user_id = $1) ORDER BY seq DESC LIMIT $2`
		args = append(args, after)
	}
	rows, err := s.db.Cached(nil).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("orderprocessing: orders: %w", err)
	}
	var out []domain.Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("orderprocessing: orders: %w", err)
		}
		out = append(out, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := loadSteps(ctx, s.db.Cached(nil), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NotifyChannel is the PostgreSQL channel on which each order transition
// is announced, with the payload "<lease owner> <order id>" (Changes).
const NotifyChannel = "tokenrelay_orders"

const transitionSQL = `UPDATE orders SET status = $1, failure_reason = $2, version = $3, updated_at = $4,
	operator_note = $5, lease_owner = $6, lease_until = COALESCE($7, lease_until)
	WHERE id = $8 AND lease_owner = $9 AND lease_epoch = $10 AND version = $11`

// Changes calls fn with the id of each order another replica's saga moved
// on, until ctx ends (PostgreSQL LISTEN on NotifyChannel; transitions of
// owner itself are skipped). ready is called each time the listener is in
// place, the first time and after a reconnection: changes before it were
// not seen. On SQLite, whose writers are all in this process, it returns
// sqldb.ErrNoNotifications at once.
func (s *Store) Changes(ctx context.Context, owner string, ready func(), fn func(orderID string)) error {
	return s.db.Listen(ctx, NotifyChannel, ready, func(payload string) {
		from, id, ok := strings.Cut(payload, " ")
		if ok && from != owner {
			fn(id)
		}
	})
}

// Transition implements domain.Repository. No read: the saga holds the
// order in memory while it holds the lease. On SQLite a transition is one
// fenced, version-checked UPDATE of the order and one UPDATE per changed
// step, in one transaction; on PostgreSQL it is all one statement, its
// NOTIFY included (one round trip, atomic without BEGIN and COMMIT).
func (s *Store) Transition(ctx context.Context, lease domain.Lease, prev, next domain.Order, release bool) (domain.Order, error) {
	next.Version = prev.Version + 1
	owner, until := lease.Owner, sql.NullTime{}
	if release {
		owner, until = "", sql.NullTime{Time: time.Unix(0, 0).UTC(), Valid: true}
	}
	args := []any{next.Status, next.FailureReason, next.Version, next.UpdatedAt.UTC(), next.OperatorNote, owner, until,
		next.ID, lease.Owner, lease.Epoch, prev.Version}
	// Fenced: the lease and the version are checked in the statement that
	// writes, so a replica whose lease was taken over (or an order changed
	// behind this one's back) writes nothing, and the steps are not reached.
	fenced := func(res sql.Result, err error) error {
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return domain.ErrLeaseLost
		}
		return nil
	}
	var err error
	if s.db.Dialect() == sqldb.Postgres {
		q, stepArgs := transitionStatement(prev.Steps, next.Steps, len(args)+2)
		args = append(append(args, NotifyChannel), stepArgs...)
		err = fenced(s.db.Cached(nil).ExecContext(ctx, q, args...))
	} else {
		err = s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
			tx := s.db.Cached(sqlTx) // statements prepared once, run in sqlTx
			if err := fenced(tx.ExecContext(ctx, transitionSQL, args...)); err != nil {
				return err
			}
			return writeSteps(ctx, tx, next.ID, prev.Steps, next.Steps)
		})
	}
	if err != nil {
		return domain.Order{}, fmt.Errorf("orderprocessing: order transition: %w", err)
	}
	return next, nil
}

// transitionStatement is the PostgreSQL statement of a transition:
// transitionSQL, one UPDATE of each step that differs from before, applied
// only when the order's UPDATE passed its fence, and the NOTIFY (with
// $12 the channel), sent when the statement commits: a refused transition
// writes and notifies nothing. The steps' parameters start at $first.
func transitionStatement(before, after []domain.Step, first int) (string, []any) {
	var b strings.Builder
	b.WriteString("WITH u AS (" + transitionSQL + " RETURNING id)")
	var args []any
	for i, st := range after {
		if i < len(before) && before[i] == st {
			continue
		}
		n := first + len(args)
		fmt.Fprintf(&b, `, s%d AS (UPDATE steps SET state = $%d, reference = $%d, attempts = $%d, last_error = $%d
			WHERE order_id = (SELECT id FROM u) AND capability = $%d)`, i, n, n+1, n+2, n+3, n+4)
		args = append(args, st.State, st.Reference, st.Attempts, st.LastError, st.Capability)
	}
	b.WriteString(" SELECT pg_notify($12, $9 || ' ' || id) FROM u")
	return b.String(), args
}

// writeSteps writes the steps of order id that differ from before: a saga
// transition touches one.
func writeSteps(ctx context.Context, tx sqldb.Cached, id string, before, after []domain.Step) error {
	for i, st := range after {
		if i < len(before) && before[i] == st {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE steps SET state = $1, reference = $2, attempts = $3, last_error = $4
			WHERE order_id = $5 AND capability = $6`, st.State, st.Reference, st.Attempts, st.LastError, id, st.Capability); err != nil {
			return err
		}
	}
	return nil
}

// Claim implements domain.Repository.
func (s *Store) Claim(ctx context.Context, id, owner string, now, until time.Time) (domain.Lease, bool, error) {
	lease := domain.Lease{Owner: owner}
	err := s.db.Cached(nil).QueryRowContext(ctx, `UPDATE orders SET lease_owner = $1, lease_until = $2,
		lease_epoch = CASE WHEN lease_owner = $1 THEN lease_epoch ELSE lease_epoch + 1 END
		WHERE id = $3 AND status NOT IN ($4, $5, $6) AND (lease_owner = $1 OR lease_owner = '' OR lease_until < $7)
		RETURNING lease_epoch`,
		owner, until.UTC(), id, domain.OrderCompleted, domain.OrderFailed, domain.OrderNeedsOperator, now.UTC()).Scan(&lease.Epoch)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Lease{}, false, nil
	case err != nil:
		return domain.Lease{}, false, fmt.Errorf("orderprocessing: claim: %w", err)
	}
	return lease, true, nil
}

// Release implements domain.Repository. The epoch stays: the next claim,
// whoever makes it, starts a new one.
func (s *Store) Release(ctx context.Context, id string, lease domain.Lease) error {
	_, err := s.db.Cached(nil).ExecContext(ctx, `UPDATE orders SET lease_owner = '', lease_until = $1
		WHERE id = $2 AND lease_owner = $3 AND lease_epoch = $4`,
		time.Unix(0, 0).UTC(), id, lease.Owner, lease.Epoch)
	return err
}

// Unfinished implements domain.Repository.
func (s *Store) Unfinished(ctx context.Context, now time.Time, limit int) ([]string, error) {
	// The statuses match the partial index orders_unfinished (migration
	// 0003): the final ones, domain.FinalStatuses.
	rows, err := s.db.Cached(nil).QueryContext(ctx, `SELECT id FROM orders WHERE status NOT IN ($1, $2, $3)
		AND (lease_owner = '' OR lease_until < $4) ORDER BY seq LIMIT $5`,
		domain.OrderCompleted, domain.OrderFailed, domain.OrderNeedsOperator, now.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("orderprocessing: unfinished: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
