// Package capability is the domain side of the Capability Token Relay: the
// types a domain service (Coupons, Points, Payments, or any new one) uses to
// have its confirmation tokens signed, to keep them sealed at rest for
// idempotent retries, and to receive them back, verified, when
// OrderProcessing exercises or compensates them.
//
// A domain's use cases depend on the small interfaces here, not on the token
// engine, so they are tested with plain fakes and wired to the engine in one
// place.
package capability

import (
	"context"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
)

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
