package capability

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Peer names a token issuer a service trusts and where its keys come from:
// a *keys.Ring in process, or a jwks.Cache source for an issuer reached by
// URL.
type Peer struct {
	Issuer string
	Keys   keys.Source
}

// Trust is what every domain service trusts, and how. Embed it in a domain's
// Config.
type Trust struct {
	// Keys is the domain's own signing key ring: its confirmation tokens are
	// signed with it and verified against it.
	Keys *keys.Ring
	// Gateway issues the transaction tokens, for the audience TrustDomain.
	Gateway     Peer
	TrustDomain string
	// OrderProcessing issues checkout and workload tokens for the domain.
	OrderProcessing Peer
}

// ErrIncompleteTrust reports a Trust with a missing field.
var ErrIncompleteTrust = errors.New("capability: incomplete trust configuration")

// Verifier returns the one verifier of domain name: transaction tokens from
// the gateway (with the verified-token cache), checkout and workload tokens
// from OrderProcessing for the audience name, and the domain's own
// confirmation tokens, whose capabilities must lie in the namespace name.
func (t Trust) Verifier(name string) (*token.Verifier, error) {
	if t.Keys == nil || t.Gateway.Keys == nil || t.Gateway.Issuer == "" || t.TrustDomain == "" ||
		t.OrderProcessing.Keys == nil || t.OrderProcessing.Issuer == "" {
		return nil, ErrIncompleteTrust
	}
	return token.NewVerifier(
		token.WithVerifiedCache(1<<14),
		token.Trust(t.Gateway.Issuer, t.Gateway.Keys, token.Accept(token.Transaction, t.TrustDomain)),
		token.Trust(t.OrderProcessing.Issuer, t.OrderProcessing.Keys,
			token.Accept(token.Checkout, name), token.Accept(token.Workload, name)),
		token.Trust(name, t.Keys, token.Accept(token.Confirmation, Audience), token.Namespace(name)),
	)
}

// Interceptor returns the authentication interceptor of a domain's handlers:
// every RPC of the domain's own service needs a transaction token;
// CapabilityService needs a workload token signed by OrderProcessing, and a
// transaction token only when there is one to pass on. The saga runs
// after the request that placed the order has returned (and resumes after
// a restart), so its calls carry no user's transaction: the workload token
// authenticates them, and the order id correlates their logs.
func (t Trust) Interceptor(v *token.Verifier) connect.Interceptor {
	return authn.NewServerInterceptor(v,
		authn.AllowAnonymous(capabilityv1connect.CapabilityServiceExerciseProcedure, capabilityv1connect.CapabilityServiceCompensateProcedure),
		authn.RequireWorkload(capabilityv1connect.CapabilityServiceName, v, t.OrderProcessing.Issuer))
}

// Register mounts a domain's handlers on mux: its own service, built by own
// (a generated New...ServiceHandler bound to its implementation), and
// CapabilityService over d; both behind Interceptor(v), then opts'
// interceptors; and the domain's JWKS at keys.WellKnownPath. errs is the
// domain's error mapping.
func (t Trust) Register(mux *http.ServeMux, v *token.Verifier, d Domain, errs func(context.Context, error) *connect.Error,
	own func(...connect.HandlerOption) (string, http.Handler), opts ...connect.HandlerOption) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(t.Interceptor(v))}, opts...)
	mux.Handle(own(opts...))
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(NewHandler(v, d, errs), opts...))
	mux.Handle("GET "+keys.WellKnownPath, t.Keys.Handler())
}
