// Package authn authenticates every call between tokenrelay services with
// Connect interceptors, and tells handlers who is calling.
//
// Two tokens travel on internal calls:
//
//   - The transaction token (header Txn-Token, token.Transaction), minted by
//     the gateway once per inbound request (or by its Txn-Token Service for
//     a workload without one, such as the saga continuing an order's
//     transaction) and passed on unchanged by every service. [NewServerInterceptor] verifies it on every RPC (through the
//     verifier's verified-token cache, so the hops after the first cost a
//     hash and a map lookup), refuses the call with Unauthenticated when it
//     is missing or bad, and puts it in the context; [NewClientInterceptor]
//     copies it from the context onto every outgoing request.
//   - The workload token (header Workload-Token, token.Workload), signed by
//     the calling service with its own key for one callee and bound to one
//     call. It proves which service calls, for RPCs only one service may
//     call (OrderProcessing calling CapabilityService). [WithWorkload] makes
//     a client sign one per call; [RequireWorkload] checks it.
//
// A call that carries either header more than once is refused
// (Unauthenticated, [ErrRepeatedHeader]), whichever copy is valid: the token
// that authenticates a call must not depend on which copy a reader takes.
//
// # Workload tokens are bound to their call, not one-time
//
// Nothing records a workload token's use. Instead each one names the call
// it was made for, as DPoP (RFC 9449) binds a proof to htm and htu: proc is
// the full procedure ("/tokenrelay.capability.v1.CapabilityService/Exercise")
// and req the [RequestDigest] of the request message, the SHA-256 of its
// deterministic protobuf encoding. [RequireWorkload] refuses
// (Unauthenticated, [ErrWorkloadBinding]) a token whose proc or req is not
// that of the call it arrives with. A token captured from one call (from a
// log, a proxy, a trace) therefore cannot exercise another confirmation
// token, exercise one for another order, or compensate anything: each of
// those is another procedure or another message. All it can do, within its
// lifetime (at most 2 minutes), is repeat the identical call, and that is
// harmless: Exercise and Compensate are idempotent per (confirmation token
// jti, order id), both inside the bound message, so a repeat returns the
// result stored by the first call and changes nothing. The other headers
// are not bound (the transaction token, an Idempotency-Key); neither
// changes what an identical Exercise or Compensate does (the transaction
// token's txn only labels the logs).
//
// A streaming call's token binds the procedure only (req is
// [StreamRequest]): its messages are not known when its headers are sent.
// No procedure that requires a workload token streams today
// (CapabilityService is unary).
//
// Handlers read the caller with [RequireCaller] (or [CallerFrom]) and log with the context, so
// that [NewLogHandler] adds the transaction id (txn) to every log line.
package authn

import (
	"context"
	"errors"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Header names.
const (
	// TxnHeader carries the transaction token.
	TxnHeader = "Txn-Token"
	// WorkloadHeader carries the workload token.
	WorkloadHeader = "Workload-Token"
)

// AdminScope is the scope that makes a caller an administrator.
const AdminScope = "admin"

type txnKey struct{}
type workloadKey struct{}

// transaction is what the context holds: the raw token, to pass on unchanged,
// and its verified claims.
type transaction struct {
	raw    string
	claims token.TransactionClaims
}

// ContextWithTransaction returns ctx carrying a verified transaction token.
// The server interceptor calls it; the embedded composition root and tests
// call it for in-process calls that skip HTTP.
func ContextWithTransaction(ctx context.Context, raw string, claims token.TransactionClaims) context.Context {
	return context.WithValue(ctx, txnKey{}, transaction{raw: raw, claims: claims})
}

// Caller is the user on whose behalf a request runs, from its transaction
// token.
type Caller struct {
	// Subject is the user id (`usr_...`).
	Subject string
	// Scopes are the scopes of the transaction.
	Scopes []string
	// Tenant is the tctx "tenant" value, empty when none.
	Tenant string
	// Txn is the transaction id.
	Txn string
}

// HasScope reports whether the caller was granted scope.
func (c Caller) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// IsAdmin reports whether the caller has the admin scope.
func (c Caller) IsAdmin() bool { return c.HasScope(AdminScope) }

// CallerFrom returns the caller of the request whose context is ctx. ok is
// false when no verified transaction token is in ctx, which behind
// NewServerInterceptor never happens.
func CallerFrom(ctx context.Context) (c Caller, ok bool) {
	t, ok := ctx.Value(txnKey{}).(transaction)
	if !ok {
		return Caller{}, false
	}
	return Caller{
		Subject: t.claims.Subject,
		Scopes:  strings.Fields(t.claims.Scope),
		Tenant:  t.claims.Context["tenant"],
		Txn:     t.claims.Txn,
	}, true
}

// RequireCaller returns the user on whose behalf the request whose context
// is ctx runs, or an Unauthenticated Connect error ("no transaction token")
// when ctx holds no verified transaction token with a subject. Handlers of
// RPCs that act for a user call it first and return its error as it is.
func RequireCaller(ctx context.Context) (Caller, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Subject == "" {
		return Caller{}, connect.NewError(connect.CodeUnauthenticated, errors.New("no transaction token"))
	}
	return c, nil
}

type txnIDKey struct{}

// ContextWithTxn returns ctx labelled with the transaction id txn for its
// log lines and spans only: it holds no token, so no caller is found in it
// and clients send none. Work that continues a transaction without a token
// in hand (the saga resuming an order) labels its context with it; a
// transaction token put in the context later wins.
func ContextWithTxn(ctx context.Context, txn string) context.Context {
	return context.WithValue(ctx, txnIDKey{}, txn)
}

// TxnFrom returns the transaction id in ctx, or "": that of its
// transaction token, else the label of ContextWithTxn.
func TxnFrom(ctx context.Context) string {
	if t, ok := ctx.Value(txnKey{}).(transaction); ok {
		return t.claims.Txn
	}
	txn, _ := ctx.Value(txnIDKey{}).(string)
	return txn
}

// rawTransaction returns the raw transaction token in ctx, or "".
func rawTransaction(ctx context.Context) string {
	t, _ := ctx.Value(txnKey{}).(transaction)
	return t.raw
}

// WorkloadFrom returns the name of the workload that signed the request's
// workload token, when a RequireWorkload interceptor verified one.
func WorkloadFrom(ctx context.Context) (string, bool) {
	w, ok := ctx.Value(workloadKey{}).(string)
	return w, ok
}
