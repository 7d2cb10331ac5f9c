package capabilityrpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// VerifyCheckout verifies a checkout token (issuer OrderProcessing, audience
// the calling domain, as v is configured) and checks that it belongs to the
// caller. Errors are Connect errors: InvalidArgument for a missing or
// oversized token, Unauthenticated for a bad one (it is a credential of the
// call), PermissionDenied for another user's checkout.
func VerifyCheckout(ctx context.Context, v *token.Verifier, raw, callerID string) (capability.Checkout, error) {
	if raw == "" {
		return capability.Checkout{}, connect.NewError(connect.CodeInvalidArgument, errors.New("checkout_token is required"))
	}
	if len(raw) > MaxTokenBytes {
		return capability.Checkout{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("checkout_token is longer than %d bytes", MaxTokenBytes))
	}
	c, err := token.Verify(ctx, v, token.Checkout, raw)
	if err != nil {
		return capability.Checkout{}, rpcerr.Token(fmt.Errorf("checkout token: %w", err))
	}
	if c.Subject != callerID {
		return capability.Checkout{}, connect.NewError(connect.CodePermissionDenied, errors.New("the checkout belongs to another user"))
	}
	return capability.Checkout{
		ID:        c.OrderProcessingID,
		UserID:    c.Subject,
		Total:     money.Money{AmountMinor: c.AmountMinor, Currency: c.Currency},
		ExpiresAt: c.ExpiresAt,
	}, nil
}

// VerifyConfirm checks what every domain's Confirm RPC checks before its use
// case runs, in this order: the request's idempotency key (keyField, the
// message's idempotency_key, and h's header; see idempotency.Key) and the
// caller's checkout token (see VerifyCheckout). Errors are Connect errors:
// InvalidArgument for a bad key, else those of VerifyCheckout.
func VerifyConfirm(ctx context.Context, v *token.Verifier, checkoutToken, keyField string, h http.Header, callerID string) (key string, co capability.Checkout, err error) {
	key, err = idempotency.Key(keyField, h)
	if err != nil {
		return "", capability.Checkout{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	co, err = VerifyCheckout(ctx, v, checkoutToken, callerID)
	return key, co, err
}
