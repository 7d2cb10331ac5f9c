package app

import (
	"context"
	"time"

	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// Operator runs the operator's use cases on orders that need one (tokenrelay
// orders stuck, retry, resolve), outside any saga and without a caller: the
// operator is whoever can reach the database.
type Operator struct {
	Repo domain.OperatorRepository
	Now  func() time.Time
}

func (op Operator) now() time.Time {
	if op.Now == nil {
		return time.Now()
	}
	return op.Now()
}

// Stuck lists the orders that need an operator, oldest first, at most limit.
func (op Operator) Stuck(ctx context.Context, limit int) ([]domain.Order, error) {
	return op.Repo.NeedingOperator(ctx, limit)
}

// Retry puts an order that needs an operator back to COMPENSATING, its
// refused steps with it (domain.Order.RetryRefused), with a free lease: the
// recovery scan of any replica picks it up. It returns the order as stored
// and the steps put back.
func (op Operator) Retry(ctx context.Context, id string) (domain.Order, []domain.Step, error) {
	var retried []domain.Step
	o, err := op.Repo.OperatorUpdate(ctx, id, op.now(), func(o *domain.Order) error {
		var err error
		retried, err = o.RetryRefused()
		return err
	})
	return o, retried, err
}

// Resolve ends an order that needs an operator FAILED, its refused steps
// RESOLVED, with the operator's note (domain.Order.Resolve). It returns
// the order as stored and the steps resolved.
func (op Operator) Resolve(ctx context.Context, id, note string) (domain.Order, []domain.Step, error) {
	var resolved []domain.Step
	o, err := op.Repo.OperatorUpdate(ctx, id, op.now(), func(o *domain.Order) error {
		var err error
		resolved, err = o.Resolve(note)
		return err
	})
	return o, resolved, err
}
