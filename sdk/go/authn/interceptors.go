package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// ErrMissingToken reports a call without the token it needs.
var ErrMissingToken = errors.New("authn: missing token")

// ErrWorkloadNotAllowed reports a workload token from a workload that may
// not call the procedure.
var ErrWorkloadNotAllowed = errors.New("authn: workload not allowed")

// ErrRepeatedHeader reports a call carrying a token header (Txn-Token,
// Workload-Token) more than once: which token authenticates a call must not
// depend on which copy a reader takes.
var ErrRepeatedHeader = errors.New("authn: token header repeated")

// ErrWorkloadBinding reports a workload token made for another call: its
// proc is not the procedure called, or its req not the digest of the
// request (see RequestDigest).
var ErrWorkloadBinding = errors.New("authn: workload token bound to another call")

// StreamRequest is the req claim of a workload token for a streaming call.
// A stream's messages are not known when its headers are sent, so such a
// token binds the procedure only. It is no digest (those are 43
// characters), so a stream's token never passes for a unary call's.
const StreamRequest = "stream"

// RequestDigest returns the req claim that binds a workload token to a unary
// call with request msg: the unpadded base64url SHA-256 of msg's
// deterministic protobuf encoding. It depends on the message, not on the
// codec it travels in (binary or JSON, Connect or gRPC). Both ends must
// share the message's schema: a field the server does not know would be
// encoded in another order there, and the binding would fail.
func RequestDigest(msg proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return "", fmt.Errorf("authn: request digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// unaryDigest is RequestDigest of a unary request's message.
func unaryDigest(req connect.AnyRequest) (string, error) {
	msg, ok := req.Any().(proto.Message)
	if !ok {
		return "", fmt.Errorf("authn: request digest: %T is not a protobuf message", req.Any())
	}
	return RequestDigest(msg)
}

// streamDigest is the binding of a streaming call.
func streamDigest() (string, error) { return StreamRequest, nil }

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
// token.Workload for this service's audience), signed by one of workloads,
// and bound to the call it arrives with: its proc must be the procedure, and
// its req the RequestDigest of the request (StreamRequest for a stream).
// A token bound to another call is Unauthenticated (ErrWorkloadBinding); a
// genuine one from a workload not listed is PermissionDenied
// (ErrWorkloadNotAllowed).
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

// authenticate checks the tokens of a call to procedure with headers h;
// binding returns the req claim the call's workload token must carry.
func (s *serverInterceptor) authenticate(ctx context.Context, procedure string, h http.Header, binding func() (string, error)) (context.Context, error) {
	raw, err := single(h, TxnHeader)
	if err != nil {
		return ctx, err
	}
	work, err := single(h, WorkloadHeader)
	if err != nil {
		return ctx, err
	}
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
		if work == "" {
			return ctx, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s header", ErrMissingToken, WorkloadHeader))
		}
		claims, err := token.Verify(ctx, rule.v, token.Workload, work)
		if err != nil {
			return ctx, rpcerr.Token(fmt.Errorf("workload token: %w", err))
		}
		if claims.Procedure != procedure {
			return ctx, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: procedure", ErrWorkloadBinding))
		}
		want, err := binding()
		if err != nil {
			return ctx, connect.NewError(connect.CodeInternal, errors.New("authn: request digest"))
		}
		if claims.RequestDigest != want {
			return ctx, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: request", ErrWorkloadBinding))
		}
		if !slices.Contains(rule.allowed, claims.Issuer) {
			return ctx, connect.NewError(connect.CodePermissionDenied, ErrWorkloadNotAllowed)
		}
		ctx = context.WithValue(ctx, workloadKey{}, claims.Issuer)
	}
	return ctx, nil
}

// single returns the one value of header name, "" when absent, and refuses
// a header given more than once (http.Header.Get would take the first).
func single(h http.Header, name string) (string, error) {
	switch v := h.Values(name); len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %s", ErrRepeatedHeader, name))
}

// WrapUnary implements connect.Interceptor.
func (s *serverInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := s.authenticate(ctx, req.Spec().Procedure, req.Header(), func() (string, error) { return unaryDigest(req) })
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

// WrapStreamingHandler implements connect.Interceptor. A stream's workload
// token is bound to its procedure only (StreamRequest).
func (s *serverInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := s.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader(), streamDigest)
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// ClientOption configures NewClientInterceptor.
type ClientOption func(*clientInterceptor)

// WithWorkload makes the client sign a fresh workload token with is for
// audience (the callee's workload name) on every call, bound to the call:
// proc is the procedure, req the RequestDigest of a unary call's request
// (StreamRequest for a stream).
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

// annotate sets the tokens of a call to procedure on h; binding returns the
// req claim of its workload token.
func (c *clientInterceptor) annotate(ctx context.Context, procedure string, h http.Header, binding func() (string, error)) error {
	if raw := rawTransaction(ctx); raw != "" {
		h.Set(TxnHeader, raw)
	}
	if c.workload == nil {
		return nil
	}
	req, err := binding()
	if err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("sign workload token: %w", err))
	}
	raw, _, err := token.Issue(ctx, c.workload, token.Workload, token.WorkloadClaims{
		Registered:    token.Registered{Audience: []string{c.audience}},
		Procedure:     procedure,
		RequestDigest: req,
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
			if err := c.annotate(ctx, req.Spec().Procedure, req.Header(), func() (string, error) { return unaryDigest(req) }); err != nil {
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
		if err := c.annotate(ctx, spec.Procedure, conn.RequestHeader(), streamDigest); err != nil {
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
