package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/replay"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// errNewDefect stands for a token sentinel added after this test: it is
// mapped because it wraps the group.
var errNewDefect = fmt.Errorf("%w: a check added later", token.ErrInvalid)

func TestToken(t *testing.T) {
	t.Parallel()
	arg := []rpcerr.TokenOption{rpcerr.AsArgument()}
	tests := []struct {
		name     string
		err      error
		opts     []rpcerr.TokenOption
		want     connect.Code
		sentinel error
	}{
		{"expired credential", fmt.Errorf("x: %w", token.ErrExpired), nil, connect.CodeUnauthenticated, token.ErrExpired},
		{"bad signature", token.ErrSignature, nil, connect.CodeUnauthenticated, token.ErrSignature},
		{"unknown kid", fmt.Errorf("token: key lookup: %w", keys.ErrKeyNotFound), nil, connect.CodeUnauthenticated, keys.ErrKeyNotFound},
		{"expired argument", token.ErrExpired, arg, connect.CodeFailedPrecondition, token.ErrExpired},
		{"not yet valid argument", token.ErrNotYetValid, arg, connect.CodeFailedPrecondition, token.ErrNotYetValid},
		{"malformed argument", token.ErrMalformed, arg, connect.CodeInvalidArgument, token.ErrMalformed},
		{"a defect added later", errNewDefect, nil, connect.CodeUnauthenticated, token.ErrInvalid},
		{"a defect added later, argument", errNewDefect, arg, connect.CodeInvalidArgument, token.ErrInvalid},
		{"replayed", fmt.Errorf("consume: %w", replay.ErrReplayed), nil, connect.CodeAlreadyExists, replay.ErrReplayed},
		{"replayed argument", replay.ErrReplayed, arg, connect.CodeAlreadyExists, replay.ErrReplayed},
		{"keys unavailable", fmt.Errorf("jwks: %w", keys.ErrUnavailable), nil, connect.CodeUnavailable, keys.ErrUnavailable},
		{"canceled", context.Canceled, nil, connect.CodeCanceled, context.Canceled},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), nil, connect.CodeDeadlineExceeded, context.DeadlineExceeded},
		{"connect error passes", connect.NewError(connect.CodeNotFound, errors.New("x: no such order")), nil, connect.CodeNotFound, nil},
		{"internal", errors.New("disk on fire at /var/secret"), nil, connect.CodeInternal, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ce := rpcerr.Token(tc.err, tc.opts...)
			if ce.Code() != tc.want {
				t.Fatalf("code = %v, want %v", ce.Code(), tc.want)
			}
			if tc.sentinel != nil && (!errors.Is(ce, tc.sentinel) || ce.Message() != tc.sentinel.Error()) {
				t.Fatalf("%v does not name %v", ce, tc.sentinel)
			}
			if tc.want != connect.CodeNotFound && (strings.Contains(ce.Message(), "x:") || strings.Contains(ce.Message(), "/var/secret")) {
				t.Fatalf("message leaks detail: %q", ce.Message())
			}
		})
	}
	if rpcerr.Token(nil) != nil {
		t.Fatal("Token(nil) != nil")
	}
}

// TestTokenKeepsTheChain: the client sees the sentinel's text alone (an
// unknown kid reads as a bad signature), while the server's own observers
// (metrics, logs, the gateway's Observe) still find every error of the
// chain with errors.Is.
func TestTokenKeepsTheChain(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("access token: %w", fmt.Errorf("%w: no key of this kid at the issuer: %w", token.ErrSignature, keys.ErrKeyNotFound))
	for _, opts := range [][]rpcerr.TokenOption{nil, {rpcerr.AsArgument()}} {
		ce := rpcerr.Token(err, opts...)
		if ce.Message() != token.ErrSignature.Error() || strings.Contains(ce.Error(), "kid") {
			t.Fatalf("message = %q, want the signature sentinel's alone", ce.Message())
		}
		for _, target := range []error{token.ErrSignature, token.ErrInvalid, keys.ErrKeyNotFound} {
			if !errors.Is(ce, target) {
				t.Errorf("errors.Is(%v, %v) = false", ce, target)
			}
		}
		if token.Reason(ce) != "signature" || token.Sentinel(ce) != token.ErrSignature {
			t.Errorf("Reason = %q, Sentinel = %v", token.Reason(ce), token.Sentinel(ce))
		}
	}
}

// A handler maps what Verify returned: the client learns which check
// failed and nothing of the token.
func ExampleToken() {
	err := fmt.Errorf("confirmation token: %w", token.ErrExpired)
	fmt.Println(rpcerr.Token(err, rpcerr.AsArgument()))
	fmt.Println(rpcerr.Token(fmt.Errorf("transaction token: %w", token.ErrSignature)))
	// Output:
	// failed_precondition: token expired
	// unauthenticated: token signature invalid
}
