package capability

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Kept is what a domain's confirmation record keeps of the token it signed
// (a domain's record embeds it): the token sealed under its jti (the record
// id the [Sealer] binds it to), so that an idempotent retry gets the same
// token back.
type Kept struct {
	JTI         string
	SealedToken string // the token, encrypted at rest, for idempotent retries
	ExpiresAt   time.Time
	CreatedAt   time.Time // when the record was saved
}

// Records is a domain's store of confirmation records R.
type Records[R any] interface {
	// ConfirmationByKey returns the user's record saved with an idempotency
	// key, or an error wrapping ErrNotFound.
	ConfirmationByKey(ctx context.Context, userID, key string) (R, error)
	// Confirmation returns the record of the token with a jti, or an error
	// wrapping ErrNotFound.
	Confirmation(ctx context.Context, jti string) (R, error)
	// SaveConfirmation stores a new record. When the user already has a
	// record with its idempotency key, it returns that one and created is
	// false.
	SaveConfirmation(ctx context.Context, rec R) (stored R, created bool, err error)
}

// Bound is what a confirmation record binds into its token: the claims the
// token is signed with, and that it must still carry, exactly, when it comes
// back to be exercised or compensated.
type Bound struct {
	Subject    string
	CheckoutID string
	Settlement money.Money
	// Constraints are the domain's own references and hashes (see [Hash]).
	Constraints map[string]string
}

// Hash returns the hex SHA-256 of parts joined by NUL bytes: the value of a
// constraint that binds several record fields together, so that no claim
// can be swapped for another record's.
func Hash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

// Confirmer is the confirmation flow every domain shares, over the domain's
// confirmation record R (the authority Exercise checks a token against):
//
//   - [Confirmer.Confirm] issues at most one token per user and idempotency
//     key: it replays the token an earlier confirmation with the key saved
//     (refusing the key reused for another request), and otherwise has the
//     domain judge the request, signs the draft its record binds, seals the
//     token under its jti, saves the record and, when a concurrent retry
//     saved first, replays that one;
//   - [Confirmer.Check] (and CheckExercise, CheckCompensate) verifies that a
//     verified token comes back exactly as the record bound it.
//
// Every field is required but Now. Errors of the store are returned as they
// are; the Confirmer's own refusals are (or wrap) ErrIdempotencyConflict,
// ErrMismatch and ErrInvalidArgument, which the domain's ports map with its
// other sentinels.
type Confirmer[R any] struct {
	// Capability is the one capability the domain grants, e.g. "points:spend".
	Capability string
	Issuer     Issuer
	Sealer     Sealer
	Records    Records[R]

	// Bind returns what rec binds into its token.
	Bind func(rec R) Bound
	// Kept returns the part of rec that keeps its token (the Kept it
	// embeds).
	Kept func(rec *R) *Kept
	// Now stamps a new record's CreatedAt; it defaults to time.Now.
	Now func() time.Time
}

// Request is one confirmation for [Confirmer.Confirm].
type Request[R any] struct {
	// UserID is the verified caller; Key the idempotency key ("" issues a
	// new token every time).
	UserID, Key string
	// Same reports whether prev, saved earlier with Key, was saved for this
	// same request; Confirm refuses another with ErrIdempotencyConflict.
	Same func(prev R) bool
	// Prepare judges the request and returns the record to save, without its
	// token. It runs only when no confirmation with Key exists; a refusal is
	// returned as it is.
	Prepare func(ctx context.Context) (R, error)
}

// Confirmed is the result of [Confirmer.Confirm].
type Confirmed[R any] struct {
	Token     string
	ExpiresAt time.Time
	// Record is the record saved for the token: the new one, or the earlier
	// one that a retry replays.
	Record R
	// Replayed is true when the token is an earlier confirmation's: Prepare
	// did not run, or its result was dropped for a concurrent retry's.
	Replayed bool
}

// Confirm runs the confirmation flow for req (see [Confirmer]).
func (c Confirmer[R]) Confirm(ctx context.Context, req Request[R]) (Confirmed[R], error) {
	if req.Key != "" {
		prev, err := c.Records.ConfirmationByKey(ctx, req.UserID, req.Key)
		switch {
		case err == nil:
			return c.replay(prev, req)
		case !errors.Is(err, ErrNotFound):
			return Confirmed[R]{}, err
		}
	}
	rec, err := req.Prepare(ctx)
	if err != nil {
		return Confirmed[R]{}, err
	}
	b := c.Bind(rec)
	issued, err := c.Issuer.IssueConfirmation(ctx, Draft{
		Subject:     b.Subject,
		CheckoutID:  b.CheckoutID,
		Capability:  c.Capability,
		Constraints: b.Constraints,
		Settlement:  b.Settlement,
	})
	if err != nil {
		return Confirmed[R]{}, fmt.Errorf("issue confirmation: %w", err)
	}
	sealed, err := c.Sealer.Seal(issued.JTI, issued.Token)
	if err != nil {
		return Confirmed[R]{}, fmt.Errorf("seal confirmation: %w", err)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	*c.Kept(&rec) = Kept{JTI: issued.JTI, SealedToken: sealed, ExpiresAt: issued.ExpiresAt, CreatedAt: now()}
	stored, created, err := c.Records.SaveConfirmation(ctx, rec)
	if err != nil {
		return Confirmed[R]{}, err
	}
	if !created { // a concurrent retry with the same key won the race
		return c.replay(stored, req)
	}
	return Confirmed[R]{Token: issued.Token, ExpiresAt: issued.ExpiresAt, Record: stored}, nil
}

// replay returns the token of prev, saved earlier with req's key. It does
// not judge the request again: the token was issued, and Exercise judges it.
func (c Confirmer[R]) replay(prev R, req Request[R]) (Confirmed[R], error) {
	if !req.Same(prev) {
		return Confirmed[R]{}, ErrIdempotencyConflict
	}
	k := c.Kept(&prev)
	tok, err := c.Sealer.Open(k.JTI, k.SealedToken)
	if err != nil {
		return Confirmed[R]{}, fmt.Errorf("open stored confirmation: %w", err)
	}
	return Confirmed[R]{Token: tok, ExpiresAt: k.ExpiresAt, Record: prev, Replayed: true}, nil
}

// Check verifies a token the ports verified against the record the domain
// kept when it signed it: the token must grant exactly the domain's
// capability, have a record, and carry exactly what the record binds.
// Disagreements are (or wrap) ErrMismatch.
func (c Confirmer[R]) Check(ctx context.Context, t Token) error {
	if !t.Grants(c.Capability) {
		return fmt.Errorf("%w: capabilities %q", ErrMismatch, t.Capabilities)
	}
	rec, err := c.Records.Confirmation(ctx, t.JTI)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: no confirmation with this jti", ErrMismatch)
	}
	if err != nil {
		return err
	}
	b := c.Bind(rec)
	if t.Subject != b.Subject || t.CheckoutID != b.CheckoutID || t.Settlement != b.Settlement {
		return ErrMismatch
	}
	if len(t.Constraints) != len(b.Constraints) {
		return fmt.Errorf("%w: constraints", ErrMismatch)
	}
	for _, k := range slices.Sorted(maps.Keys(b.Constraints)) {
		if v, ok := t.Constraints[k]; !ok || v != b.Constraints[k] {
			return fmt.Errorf("%w: constraint %s", ErrMismatch, k)
		}
	}
	return nil
}

// CheckExercise validates an Exercise of t for an order and checks t (see
// [Confirmer.Check]).
func (c Confirmer[R]) CheckExercise(ctx context.Context, t Token, orderID string) error {
	if orderID == "" {
		return fmt.Errorf("%w: order_id is required", ErrInvalidArgument)
	}
	return c.Check(ctx, t)
}

// CheckCompensate validates a Compensate of t for an order with a reason
// (see [CheckReason]) and checks t (see [Confirmer.Check]).
func (c Confirmer[R]) CheckCompensate(ctx context.Context, t Token, orderID, reason string) error {
	if orderID == "" {
		return fmt.Errorf("%w: order_id is required", ErrInvalidArgument)
	}
	if err := CheckReason(reason); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return c.Check(ctx, t)
}
