// Package rpcerr maps errors to Connect errors in one place, the same way
// in every service: a service's domain errors through a Mapper, and the
// token engine's refusals through Token (package token imports no Connect).
// The service lists its sentinels and their codes; everything else follows
// one policy.
//
// The policy: a *connect.Error passes through unchanged (ports build those
// for malformed requests); a listed sentinel gets its code and the error's
// own message, which domain code writes for clients (it names the rule, never
// internals); context cancellation and deadlines get Canceled and
// DeadlineExceeded; a database that cannot be used (a connection lost or
// refused, a server shutting down, sqldb.IsUnavailable) or that stays busy
// after retries is Unavailable, which clients may retry;
// anything else is Internal with a fixed message, and the original error is
// logged with the request's context (and so its txn) instead of returned.
package rpcerr

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/idempotency"
)

// Code pairs a sentinel with the Connect code of every error that wraps it.
type Code struct {
	Err  error
	Code connect.Code
}

// Mapper maps errors of one service.
type Mapper struct {
	codes []Code
	log   *slog.Logger
}

// New returns a Mapper for the listed sentinels, first match wins;
// idempotency.ErrInvalid is always InvalidArgument.
func New(log *slog.Logger, codes ...Code) *Mapper {
	return &Mapper{codes: append(codes, Code{idempotency.ErrInvalid, connect.CodeInvalidArgument}), log: log}
}

// Map returns the Connect error for err (nil for nil).
func (m *Mapper) Map(ctx context.Context, err error) *connect.Error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	for _, c := range m.codes {
		if errors.Is(err, c.Err) {
			return connect.NewError(c.Code, err)
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded"))
	}
	if ce := store(err); ce != nil {
		m.log.WarnContext(ctx, "store unavailable", "err", err)
		return ce
	}
	m.log.ErrorContext(ctx, "internal error", "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
