package capabilityrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Checkouts verifies the checkout tokens a domain's own RPCs are called
// with (issuer OrderProcessing, audience the domain, as its verifier is
// configured), and records the ones it refuses in the domain's audit
// trail. A domain's ports get it from Wiring.
type Checkouts struct {
	verifier *token.Verifier
	trail    *audit.Trail // nil: refusals are not recorded
	log      *slog.Logger
}

// NewCheckouts returns the checkout-token verifier over v, recording
// refusals in trail (nil: none); log gets a refusal it could not record.
func NewCheckouts(v *token.Verifier, trail *audit.Trail, log *slog.Logger) *Checkouts {
	return &Checkouts{verifier: v, trail: trail, log: log}
}

// Verify verifies a checkout token and checks that it belongs to the
// caller. Errors are Connect errors: InvalidArgument for a missing or
// oversized token, Unauthenticated for a bad one (it is a credential of the
// call), PermissionDenied for another user's checkout. A bad token and
// another user's are recorded in the audit trail as refused (check
// "signature", "expired", ... or "subject"), with the caller as subject and
// the token's jti once its signature verified, within the caller's budget
// (audit.Trail.Refused).
func (c *Checkouts) Verify(ctx context.Context, raw, callerID string) (capability.Checkout, error) {
	if raw == "" {
		return capability.Checkout{}, connect.NewError(connect.CodeInvalidArgument, errors.New("checkout_token is required"))
	}
	if len(raw) > MaxTokenBytes {
		return capability.Checkout{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("checkout_token is longer than %d bytes", MaxTokenBytes))
	}
	claims, err := token.Verify(ctx, c.verifier, token.Checkout, raw)
	if err != nil {
		cerr := rpcerr.Token(fmt.Errorf("checkout token: %w", err))
		c.refused(ctx, token.CheckoutClaims{}, callerID, refusalCheck(err, cerr.Code()))
		return capability.Checkout{}, cerr
	}
	if claims.Subject != callerID {
		c.refused(ctx, claims, callerID, "subject")
		return capability.Checkout{}, connect.NewError(connect.CodePermissionDenied, errors.New("the checkout belongs to another user"))
	}
	return capability.Checkout{
		ID:        claims.OrderProcessingID,
		UserID:    claims.Subject,
		Total:     money.Money{AmountMinor: claims.AmountMinor, Currency: claims.Currency},
		ExpiresAt: claims.ExpiresAt,
	}, nil
}

// refused records the refusal of a checkout token presented by caller;
// claims are what could be trusted of it (none for a bad signature).
func (c *Checkouts) refused(ctx context.Context, claims token.CheckoutClaims, caller, check string) {
	if c.trail == nil || check == "" {
		return
	}
	err := c.trail.Refused(ctx, audit.Event{Issuer: claims.Issuer, JTI: claims.ID, Kind: token.Checkout.Name(),
		Subject: caller, CheckoutID: claims.OrderProcessingID, Check: check, ExpiresAt: claims.ExpiresAt})
	if err != nil {
		// The refusal stands; only its record is missing.
		c.log.ErrorContext(ctx, "audit: record refusal", "check", check, "error", err)
	}
}

// VerifyConfirm checks what every domain's Confirm RPC checks before its use
// case runs, in this order: the request's idempotency key (keyField, the
// message's idempotency_key, and h's header; see idempotency.Key) and the
// caller's checkout token (see Verify). Errors are Connect errors:
// InvalidArgument for a bad key, else those of Verify.
func (c *Checkouts) VerifyConfirm(ctx context.Context, checkoutToken, keyField string, h http.Header, callerID string) (key string, co capability.Checkout, err error) {
	key, err = idempotency.Key(keyField, h)
	if err != nil {
		return "", capability.Checkout{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	co, err = c.Verify(ctx, checkoutToken, callerID)
	return key, co, err
}
