package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/domain"
)

// SimMigrationSet names the simulated processor's migrations.
const SimMigrationSet = "payments_simprocessor"

// SimTimeout is how long the timeout test card keeps Authorize waiting when
// the caller's context has no earlier deadline: what a real client's own
// timeout would be.
const SimTimeout = 10 * time.Second

// The simulated test cards (see the package documentation).
const (
	SimCardApprove     = "4242424242424242"
	SimCardDecline     = "4000000000000002"
	SimCardFailCapture = "4000000000000341"
	SimCardTimeout     = "4000000000009995"
)

// behaviour is what the simulation does with a card, stored by card
// reference because the number is not kept.
type behaviour string

const (
	behaviourApprove     behaviour = "approve"
	behaviourDecline     behaviour = "decline"
	behaviourFailCapture behaviour = "fail_capture"
	behaviourTimeout     behaviour = "timeout"
)

var testCards = map[string]behaviour{
	SimCardDecline:     behaviourDecline,
	SimCardFailCapture: behaviourFailCapture,
	SimCardTimeout:     behaviourTimeout,
}

// The states of a simulated hold.
const (
	holdAuthorized = "authorized"
	holdCaptured   = "captured"
	holdVoided     = "voided"
	holdRefunded   = "refunded"
)

// SimProcessor is the built-in, simulated payment processor: deterministic by
// test card, and durable, keeping its cards and holds in a SQL database.
type SimProcessor struct {
	db      *sqldb.DB
	timeout time.Duration // see SetTimeout
}

var _ domain.Processor = (*SimProcessor)(nil)

// SetTimeout sets how long the timeout test card keeps Authorize waiting
// when the caller's context has no earlier deadline (default SimTimeout).
// Tests set it so that which bound ended the wait is known by construction,
// not by racing a clock. Set it before the processor is used.
func (p *SimProcessor) SetTimeout(d time.Duration) { p.timeout = d }

// NewSimProcessor migrates db to the simulation's schema and returns the
// processor. db must not be the Payments store's database handle: the store
// calls the processor while it holds a transaction open, which on SQLite
// holds the write lock of that database file, and on PostgreSQL a pool
// connection. Give it a SQLite file of its own, or its own PostgreSQL pool.
func NewSimProcessor(ctx context.Context, db *sqldb.DB) (*SimProcessor, error) {
	if err := sqldb.MigrateDir(ctx, db, migrations, "migrations/simprocessor", SimMigrationSet); err != nil {
		return nil, err
	}
	return &SimProcessor{db: db, timeout: SimTimeout}, nil
}

// unavailable classifies a failure of the simulation's own storage as the
// processor being unavailable, which is what it would be for Payments.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: simprocessor: %s: %w", domain.ErrProcessorUnavailable, op, err)
}

// Tokenize implements domain.Processor. It keeps the test behaviour of the
// card, its brand and last four digits, not its number.
func (p *SimProcessor) Tokenize(ctx context.Context, card domain.Card, key string) (string, error) {
	b, ok := testCards[card.Number()]
	if !ok {
		b = behaviourApprove
	}
	ref := ids.New("card")
	res, err := p.db.Cached(nil).ExecContext(ctx, `INSERT INTO sim_cards (ref, behaviour, idempotency_key, brand, last4, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) WHERE idempotency_key <> '' DO NOTHING`,
		ref, b, key, card.Brand, card.Last4, time.Now().UTC())
	if err != nil {
		return "", unavailable("tokenize", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return ref, err
	}
	var prev struct {
		behaviour    behaviour
		brand, last4 string
	}
	err = p.db.Cached(nil).QueryRowContext(ctx, `SELECT ref, behaviour, brand, last4 FROM sim_cards WHERE idempotency_key = $1`, key).
		Scan(&ref, &prev.behaviour, &prev.brand, &prev.last4)
	if err != nil {
		return "", unavailable("tokenize", err)
	}
	if prev.behaviour != b || prev.brand != string(card.Brand) || prev.last4 != card.Last4 {
		return "", fmt.Errorf("%w: simprocessor: card key reused for another card", domain.ErrIdempotencyConflict)
	}
	return ref, nil
}

// Authorize implements domain.Processor.
func (p *SimProcessor) Authorize(ctx context.Context, cardRef string, amount money.Money, key string) (string, error) {
	var b behaviour
	err := p.db.Cached(nil).QueryRowContext(ctx, `SELECT behaviour FROM sim_cards WHERE ref = $1`, cardRef).Scan(&b)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("simprocessor: unknown card reference %q", cardRef)
	case err != nil:
		return "", unavailable("authorize", err)
	case b == behaviourDecline:
		return "", fmt.Errorf("%w: the issuer refused the hold (simulated)", domain.ErrDeclined)
	case b == behaviourTimeout:
		ctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		<-ctx.Done()
		return "", fmt.Errorf("%w: no answer (simulated): %w", domain.ErrProcessorUnavailable, ctx.Err())
	}
	id := ids.New("auth")
	res, err := p.db.Cached(nil).ExecContext(ctx, `INSERT INTO sim_holds
		(id, idempotency_key, card_ref, behaviour, amount_minor, currency, state, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING`,
		id, key, cardRef, b, amount.AmountMinor, amount.Currency, holdAuthorized, time.Now().UTC())
	if err != nil {
		return "", unavailable("authorize", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return id, err
	}
	var prevRef string
	var prevAmount money.Money
	err = p.db.Cached(nil).QueryRowContext(ctx, `SELECT id, card_ref, amount_minor, currency FROM sim_holds WHERE idempotency_key = $1`, key).
		Scan(&id, &prevRef, &prevAmount.AmountMinor, &prevAmount.Currency)
	if err != nil {
		return "", unavailable("authorize", err)
	}
	if prevRef != cardRef || prevAmount != amount {
		return "", fmt.Errorf("%w: simprocessor: authorization key reused for another hold", domain.ErrIdempotencyConflict)
	}
	return id, nil
}

// simHold is where a simulated hold stands.
type simHold struct {
	state     string
	behaviour behaviour
	captureID string
	refundID  string
}

func (p *SimProcessor) hold(ctx context.Context, op, id string) (simHold, error) {
	var h simHold
	err := p.db.Cached(nil).QueryRowContext(ctx, `SELECT state, behaviour, capture_id, refund_id FROM sim_holds WHERE id = $1`, id).
		Scan(&h.state, &h.behaviour, &h.captureID, &h.refundID)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("simprocessor: %s: unknown authorization %q", op, id)
	}
	if err != nil {
		return h, unavailable(op, err)
	}
	return h, nil
}

// move runs one conditional UPDATE of a hold's state and reports whether it
// matched. States only move forward, so of concurrent calls exactly one
// moves a hold out of a state, and the others re-read where it went.
func (p *SimProcessor) move(ctx context.Context, op, query string, args ...any) (bool, error) {
	res, err := p.db.Cached(nil).ExecContext(ctx, query, args...)
	if err != nil {
		return false, unavailable(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, unavailable(op, err)
	}
	return n == 1, nil
}

// Capture implements domain.Processor.
func (p *SimProcessor) Capture(ctx context.Context, authorizationID string) (string, error) {
	h, err := p.hold(ctx, "capture", authorizationID)
	if err != nil {
		return "", err
	}
	if h.state == holdAuthorized {
		if h.behaviour == behaviourFailCapture {
			return "", fmt.Errorf("%w: the processor refused the capture (simulated)", domain.ErrCaptureFailed)
		}
		captureID := ids.New("cap")
		moved, err := p.move(ctx, "capture", `UPDATE sim_holds SET state = $1, capture_id = $2 WHERE id = $3 AND state = $4`,
			holdCaptured, captureID, authorizationID, holdAuthorized)
		if err != nil {
			return "", err
		}
		if moved {
			return captureID, nil
		}
		if h, err = p.hold(ctx, "capture", authorizationID); err != nil {
			return "", err
		}
	}
	if h.state == holdVoided {
		return "", fmt.Errorf("%w: simprocessor: the hold was voided", domain.ErrVoided)
	}
	return h.captureID, nil // captured, or captured and refunded
}

// Void implements domain.Processor.
func (p *SimProcessor) Void(ctx context.Context, authorizationID string) error {
	h, err := p.hold(ctx, "void", authorizationID)
	if err != nil {
		return err
	}
	if h.state == holdAuthorized {
		moved, err := p.move(ctx, "void", `UPDATE sim_holds SET state = $1 WHERE id = $2 AND state = $3`,
			holdVoided, authorizationID, holdAuthorized)
		if err != nil || moved {
			return err // nil when this call voided it
		}
		if h, err = p.hold(ctx, "void", authorizationID); err != nil {
			return err
		}
	}
	if h.state != holdVoided {
		return fmt.Errorf("%w: simprocessor: the hold is %s", domain.ErrHoldCaptured, h.state)
	}
	return nil
}

// Refund implements domain.Processor.
func (p *SimProcessor) Refund(ctx context.Context, authorizationID string) (string, error) {
	h, err := p.hold(ctx, "refund", authorizationID)
	if err != nil {
		return "", err
	}
	if h.state == holdCaptured {
		refundID := ids.New("ref")
		moved, err := p.move(ctx, "refund", `UPDATE sim_holds SET state = $1, refund_id = $2 WHERE id = $3 AND state = $4`,
			holdRefunded, refundID, authorizationID, holdCaptured)
		if err != nil {
			return "", err
		}
		if moved {
			return refundID, nil
		}
		if h, err = p.hold(ctx, "refund", authorizationID); err != nil {
			return "", err
		}
	}
	if h.state != holdRefunded {
		return "", fmt.Errorf("simprocessor: refund: the hold is %s, not captured", h.state)
	}
	return h.refundID, nil
}
