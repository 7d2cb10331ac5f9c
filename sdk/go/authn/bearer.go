package authn

import (
	"context"

	"connectrpc.com/connect"
)

// NewBearerInterceptor returns a client interceptor that sends accessToken
// as "Authorization: Bearer" on every call, unary and streaming: what a
// user's client sends to the gateway (seeding, load and end-to-end tests,
// tools). Services never call each other with it: past the gateway, calls
// carry the transaction token (NewClientInterceptor).
func NewBearerInterceptor(accessToken string) connect.Interceptor {
	return bearer("Bearer " + accessToken)
}

type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			req.Header().Set("Authorization", string(b))
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
