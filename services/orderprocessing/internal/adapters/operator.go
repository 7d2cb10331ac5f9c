package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// Operator is the store as the operator's commands use it (tokenrelay
// orders): list the orders that need an operator and move one on, outside
// any saga. It does not migrate: it works on a database the service has
// migrated, and fails on one it has not.
type Operator struct{ db *sqldb.DB }

var _ domain.OperatorRepository = (*Operator)(nil)

// NewOperator returns the operator's store on db.
func NewOperator(db *sqldb.DB) *Operator { return &Operator{db: db} }

// Operator returns the operator's store on s's database.
func (s *Store) Operator() *Operator { return NewOperator(s.db) }

// NeedingOperator implements domain.OperatorRepository.
func (s *Operator) NeedingOperator(ctx context.Context, limit int) ([]domain.Order, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE status = $1 ORDER BY seq LIMIT $2`,
		domain.OrderNeedsOperator, limit)
	if err != nil {
		return nil, fmt.Errorf("orderprocessing: orders needing an operator: %w", err)
	}
	var out []domain.Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("orderprocessing: orders needing an operator: %w", err)
		}
		out = append(out, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := loadSteps(ctx, s.db.SQL(), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OperatorUpdate implements domain.OperatorRepository.
func (s *Operator) OperatorUpdate(ctx context.Context, id string, now time.Time, fn func(*domain.Order) error) (domain.Order, error) {
	var out domain.Order
	var fnErr error // fn's refusal, returned as it is
	err := s.db.Tx(ctx, func(sqlTx *sql.Tx) error {
		tx := s.db.Cached(sqlTx)
		forUpdate := ""
		if s.db.Dialect() == sqldb.Postgres {
			forUpdate = " FOR UPDATE"
		}
		o, err := scanOrder(tx.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`+forUpdate, id))
		if err != nil {
			return err
		}
		if err := loadSteps(ctx, tx, &o); err != nil {
			return err
		}
		before := slices.Clone(o.Steps)
		if fnErr = fn(&o); fnErr != nil {
			return fnErr
		}
		o.Version++
		o.UpdatedAt = now.UTC().Truncate(time.Microsecond)
		// Not fenced, but fencing: the lease is freed and its epoch moved
		// on, so a replica that still holds an old lease writes nothing
		// more, and whichever replica claims the order next owns it.
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = $1, failure_reason = $2, version = $3, updated_at = $4,
			operator_note = $5, lease_owner = '', lease_until = $6, lease_epoch = lease_epoch + 1 WHERE id = $7`,
			o.Status, o.FailureReason, o.Version, o.UpdatedAt, o.OperatorNote, time.Unix(0, 0).UTC(), id); err != nil {
			return err
		}
		if err := writeSteps(ctx, tx, id, before, o.Steps); err != nil {
			return err
		}
		out = o
		return nil
	})
	switch {
	case fnErr != nil:
		return domain.Order{}, fnErr
	case errors.Is(err, domain.ErrNotFound):
		return domain.Order{}, fmt.Errorf("order %s: %w", id, domain.ErrNotFound)
	case err != nil:
		return domain.Order{}, fmt.Errorf("orderprocessing: operator update of order: %w", err)
	}
	return out, nil
}
