package capability

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Checkout is what a verified checkout token says: who checks out what total.
type Checkout struct {
	ID        string // the checkout id, "op_..."
	UserID    string
	Total     money.Money
	ExpiresAt time.Time
}

// VerifyCheckout verifies a checkout token (issuer OrderProcessing, audience
// the calling domain, as v is configured) and checks that it belongs to the
// caller. Errors are Connect errors: InvalidArgument for a missing or
// oversized token, Unauthenticated for a bad one (it is a credential of the
// call), PermissionDenied for another user's checkout.
func VerifyCheckout(ctx context.Context, v *token.Verifier, raw, callerID string) (Checkout, error) {
	if raw == "" {
		return Checkout{}, connect.NewError(connect.CodeInvalidArgument, errors.New("checkout_token is required"))
	}
	if len(raw) > MaxTokenBytes {
		return Checkout{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("checkout_token is longer than %d bytes", MaxTokenBytes))
	}
	c, err := token.Verify(ctx, v, token.Checkout, raw)
	if err != nil {
		return Checkout{}, token.ConnectError(fmt.Errorf("checkout token: %w", err))
	}
	if c.Subject != callerID {
		return Checkout{}, connect.NewError(connect.CodePermissionDenied, errors.New("the checkout belongs to another user"))
	}
	return Checkout{
		ID:        c.OrderProcessingID,
		UserID:    c.Subject,
		Total:     money.Money{AmountMinor: c.AmountMinor, Currency: c.Currency},
		ExpiresAt: c.ExpiresAt,
	}, nil
}

// TokenIssuer signs confirmation tokens with a domain's token.Issuer, for
// the kind's default lifetime (2 minutes); it implements Issuer.
type TokenIssuer struct {
	Issuer *token.Issuer
}

// IssueConfirmation implements Issuer.
func (ti TokenIssuer) IssueConfirmation(ctx context.Context, d Draft) (Issued, error) {
	claims := token.ConfirmationClaims{
		Registered:        token.Registered{Subject: d.Subject, Audience: []string{Audience}},
		OrderProcessingID: d.CheckoutID,
		Capabilities:      []string{d.Capability},
		Constraints:       d.Constraints,
		Settlement:        token.Settlement{AmountMinor: d.Settlement.AmountMinor, Currency: d.Settlement.Currency},
	}
	raw, c, err := token.Issue(ctx, ti.Issuer, token.Confirmation, claims)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Token: raw, JTI: c.ID, ExpiresAt: c.ExpiresAt}, nil
}

// Audience is the aud of every confirmation token: the orchestrator.
const Audience = "order-processing"
