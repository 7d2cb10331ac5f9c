package authn

import (
	"context"
	"log/slog"
)

// NewLogHandler wraps h so that every record logged with a request's context
// (slog.InfoContext and friends) carries the attribute txn, the transaction
// id, and so one checkout can be followed across every service's logs. Log
// the txn or a jti, never a token: this handler adds only the id.
func NewLogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if txn := TxnFrom(ctx); txn != "" {
		r.AddAttrs(slog.String("txn", txn))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
