package rpcerr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
)

var errShort = errors.New("insufficient points")

func TestMap(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	m := New(slog.New(slog.NewTextHandler(&logs, nil)), Code{errShort, connect.CodeFailedPrecondition})
	secret := errors.New("pq: connection to 10.0.0.7 refused")
	for _, tc := range []struct {
		name    string
		err     error
		code    connect.Code
		message string
	}{
		{"listed sentinel keeps its message", fmt.Errorf("%w: 5 requested, 3 left", errShort), connect.CodeFailedPrecondition, "insufficient points: 5 requested, 3 left"},
		{"connect error passes", connect.NewError(connect.CodeNotFound, errors.New("no such order")), connect.CodeNotFound, "no such order"},
		{"idempotency", idempotency.ErrInvalid, connect.CodeInvalidArgument, idempotency.ErrInvalid.Error()},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), connect.CodeCanceled, "request canceled"},
		{"deadline", context.DeadlineExceeded, connect.CodeDeadlineExceeded, "deadline exceeded"},
		{"internal is hidden", fmt.Errorf("store: %w", secret), connect.CodeInternal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := m.Map(context.Background(), tc.err)
			if got.Code() != tc.code || got.Message() != tc.message {
				t.Fatalf("Map(%v) = %v %q; want %v %q", tc.err, got.Code(), got.Message(), tc.code, tc.message)
			}
		})
	}
	if !strings.Contains(logs.String(), "10.0.0.7") {
		t.Fatal("the hidden internal error was not logged")
	}
	if m.Map(context.Background(), nil) != nil {
		t.Fatal("Map(nil) != nil")
	}
}
