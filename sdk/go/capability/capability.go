// Package capability is the domain side of the Capability Token Relay: the
// types a domain service (Coupons, Points, Payments, or any new one) uses to
// have its confirmation tokens signed, to keep them sealed at rest for
// idempotent retries, and to receive them back, verified, when
// OrderProcessing exercises or compensates them; and the rules every domain
// shares about them ([Confirmer]: one token per idempotency key, claims bound
// to the domain's record; [CheckReason]: the compensation reason).
//
// Its rule: it is pure. A domain's use cases (its internal/app) depend on it
// and on nothing of the transport, so they are tested with plain fakes and
// wired to the token engine in one place. It imports no Connect, no
// generated code, no database driver and no token engine; only money,
// keys (the rings a [Trust] names) and vault (the [VaultSealer]). The
// Connect binding (the CapabilityService handler, checkout verification,
// the issuer over the token engine, the mounting of a domain's handlers)
// is package capabilityrpc; running a domain as its own process is package
// capabilityd.
package capability

import (
	"context"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

// Audience is the aud of every confirmation token: the orchestrator,
// OrderProcessing, which is also the issuer of checkout and workload tokens.
const Audience = "order-processing"

// Draft is what a domain asks its issuer to sign into a confirmation token.
type Draft struct {
	// Subject is the user the confirmation is for (the checkout's user).
	Subject string
	// CheckoutID is the checkout it is bound to (`op_...`).
	CheckoutID string
	// Capability is the one capability granted, in the domain's namespace,
	// for example "points:spend".
	Capability string
	// Constraints are the domain's own references and hashes, opaque to
	// OrderProcessing and checked by the domain at Exercise.
	Constraints map[string]string
	// Settlement is what the confirmation pays towards the checkout total.
	Settlement money.Money
}

// Issued is a signed confirmation token.
type Issued struct {
	Token     string
	JTI       string
	ExpiresAt time.Time
}

// Issuer signs confirmation tokens with the domain's own key.
type Issuer interface {
	IssueConfirmation(ctx context.Context, d Draft) (Issued, error)
}

// Sealer encrypts a token at rest (AES-256-GCM in production), binding the
// ciphertext to the id of the record that holds it.
type Sealer interface {
	Seal(id, plaintext string) (string, error)
	Open(id, sealed string) (string, error)
}

// Token is a confirmation token whose signature, type, issuer, audience and
// (for Exercise) expiry were verified: what a domain learns from it.
type Token struct {
	JTI          string
	Issuer       string
	Subject      string
	CheckoutID   string
	Capabilities []string
	Constraints  map[string]string
	Settlement   money.Money
	ExpiresAt    time.Time
}

// Grants reports whether t grants exactly the one capability c.
func (t Token) Grants(c string) bool {
	return len(t.Capabilities) == 1 && t.Capabilities[0] == c
}

// Checkout is what a verified checkout token says: who checks out what total.
type Checkout struct {
	ID        string // the checkout id, "op_..."
	UserID    string
	Total     money.Money
	ExpiresAt time.Time
}

// ExerciseState is where a confirmation's exercise stands, as every domain
// keeps it (the values are stored).
type ExerciseState int

// The exercise states.
const (
	// ExerciseApplied: the token's effect stands.
	ExerciseApplied ExerciseState = iota + 1
	// ExerciseCompensated: the effect was undone, or the token voided before
	// it was ever applied.
	ExerciseCompensated
)

// Record is a domain's durable result of exercising or compensating one
// confirmation token.
type Record struct {
	JTI         string
	Capability  string
	OrderID     string
	Compensated bool
	// Reference is the domain's own id for the effect (redemption, ledger
	// entry, capture).
	Reference     string
	Settlement    money.Money
	AppliedAt     time.Time // zero when voided before it was applied
	CompensatedAt time.Time // zero while the effect stands
}

// Domain is what a domain service implements to take part in the relay.
// Tokens reach it verified; it checks them against its own records.
type Domain interface {
	// Exercise applies the token's effect for an order exactly once.
	Exercise(ctx context.Context, t Token, orderID string) (Record, error)
	// Compensate undoes it, or voids a token never exercised. Idempotent.
	Compensate(ctx context.Context, t Token, orderID, reason string) (Record, error)
}
