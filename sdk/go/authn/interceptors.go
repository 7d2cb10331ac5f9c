package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// ErrMissingToken reports a call without the token it needs.
var ErrMissingToken = errors.New("authn: missing token")

// ErrWorkloadNotAllowed reports a workload token from a workload that may
// not call the procedure.
var ErrWorkloadNotAllowed = errors.New("authn: workload not allowed")

// ServerOption configures NewServerInterceptor.
type ServerOption func(*serverInterceptor)

// AllowAnonymous lets the named procedures (full names such as
// "/tokenrelay.identity.v1.IdentityService/Login") run without a transaction
// token. A token that is present is still verified.
func AllowAnonymous(procedures ...string) ServerOption {
	return func(s *serverInterceptor) { s.anonymous = append(s.anonymous, procedures...) }
}

// RequireWorkload makes every procedure of service (a fully qualified name
// such as capabilityv1connect.CapabilityServiceName) require a workload token
// verified by v (which must trust each allowed workload as an issuer of
// token.Workload for this service's audience) and signed by one of
// workloads.
func RequireWorkload(service string, v *token.Verifier, workloads ...string) ServerOption {
	return func(s *serverInterceptor) {
		s.workload = append(s.workload, workloadRule{prefix: "/" + service + "/", v: v, allowed: workloads})
	}
}

type workloadRule struct {
	prefix  string
	v       *token.Verifier
	allowed []string
}

type serverInterceptor struct {
	v         *token.Verifier
	anonymous []string
	workload  []workloadRule
}

// NewServerInterceptor returns the interceptor every tokenrelay server
// installs: it verifies the Txn-Token header with v (which must trust the
// gateway as an issuer of token.Transaction for the trust domain) and puts
// the transaction in the context. A missing or bad token is Unauthenticated,
// with a message naming the failed check and never echoing the token.
func NewServerInterceptor(v *token.Verifier, opts ...ServerOption) connect.Interceptor {
	s := &serverInterceptor{v: v}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *serverInterceptor) authenticate(ctx context.Context, procedure string, h http.Header) (context.Context, error) {
	raw := h.Get(TxnHeader)
	switch {
	case raw != "":
		claims, err := token.Verify(ctx, s.v, token.Transaction, raw)
		if err != nil {
			return ctx, rpcerr.Token(fmt.Errorf("transaction token: %w", err))
		}
		ctx = ContextWithTransaction(ctx, raw, claims)
	case !slices.Contains(s.anonymous, procedure):
		return ctx, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s header", ErrMissingToken, TxnHeader))
	}
	for _, rule := range s.workload {
		if !strings.HasPrefix(procedure, rule.prefix) {
			continue
		}
		raw := h.Get(WorkloadHeader)
		if raw == "" {
			return ctx, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s header", ErrMissingToken, WorkloadHeader))
		}
		claims, err := token.Verify(ctx, rule.v, token.Workload, raw)
		if err != nil {
			return ctx, rpcerr.Token(fmt.Errorf("workload token: %w", err))
		}
		if !slices.Contains(rule.allowed, claims.Issuer) {
			return ctx, connect.NewError(connect.CodePermissionDenied, ErrWorkloadNotAllowed)
		}
		ctx = context.WithValue(ctx, workloadKey{}, claims.Issuer)
	}
	return ctx, nil
}

// WrapUnary implements connect.Interceptor.
func (s *serverInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := s.authenticate(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor; clients pass through.
func (s *serverInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (s *serverInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := s.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// ClientOption configures NewClientInterceptor.
type ClientOption func(*clientInterceptor)

// WithWorkload makes the client sign a fresh workload token with is for
// audience (the callee's workload name) on every call.
func WithWorkload(is *token.Issuer, audience string) ClientOption {
	return func(c *clientInterceptor) { c.workload, c.audience = is, audience }
}

type clientInterceptor struct {
	workload *token.Issuer
	audience string
}

// NewClientInterceptor returns the interceptor for clients of other
// tokenrelay services: it copies the transaction token of the context,
// unchanged, onto every outgoing request, and with WithWorkload adds a
// workload token. A call from a context without a transaction token goes out
// without one (the callee refuses it unless the procedure is anonymous).
func NewClientInterceptor(opts ...ClientOption) connect.Interceptor {
	c := &clientInterceptor{}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *clientInterceptor) annotate(ctx context.Context, h http.Header) error {
	if raw := rawTransaction(ctx); raw != "" {
		h.Set(TxnHeader, raw)
	}
	if c.workload == nil {
		return nil
	}
	raw, _, err := token.Issue(ctx, c.workload, token.Workload, token.WorkloadClaims{
		Registered: token.Registered{Audience: []string{c.audience}},
	})
	if err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("sign workload token: %w", err))
	}
	h.Set(WorkloadHeader, raw)
	return nil
}

// WrapUnary implements connect.Interceptor.
func (c *clientInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			if err := c.annotate(ctx, req.Header()); err != nil {
				return nil, err
			}
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (c *clientInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if err := c.annotate(ctx, conn.RequestHeader()); err != nil {
			return &failedConn{StreamingClientConn: conn, err: err}
		}
		return conn
	}
}

// WrapStreamingHandler implements connect.Interceptor; handlers pass through.
func (c *clientInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// failedConn fails a stream whose headers could not be prepared.
type failedConn struct {
	connect.StreamingClientConn
	err error
}

func (f *failedConn) Send(any) error    { return f.err }
func (f *failedConn) Receive(any) error { return f.err }
