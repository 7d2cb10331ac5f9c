package capabilityrpc

import (
	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// NewVerifier returns the one verifier of domain name under trust t:
// transaction tokens from the gateway (with the verified-token cache),
// checkout and workload tokens from OrderProcessing for the audience name,
// and the domain's own confirmation tokens, whose capabilities must lie in
// the namespace name. An incomplete t is capability.ErrIncompleteTrust.
func NewVerifier(name string, t capability.Trust) (*token.Verifier, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	return token.NewVerifier(
		token.WithVerifiedCache(1<<14),
		token.Trust(t.Gateway.Issuer, t.Gateway.Keys, token.Accept(token.Transaction, t.TrustDomain)),
		token.Trust(t.OrderProcessing.Issuer, t.OrderProcessing.Keys,
			token.Accept(token.Checkout, name), token.Accept(token.Workload, name)),
		token.Trust(name, t.Keys, token.Accept(token.Confirmation, capability.Audience), token.Namespace(name)),
	)
}

// Interceptor returns the authentication interceptor of a domain's handlers:
// every RPC of the domain's own service needs a transaction token;
// CapabilityService needs a workload token signed by OrderProcessing, which
// authenticates the caller, and verifies the transaction token that comes
// with it as any other. The saga's calls carry one continuing the order's
// transaction (its txn and user, scope the step), from the Txn-Token
// Service; it is not required, so that orders placed before their txn was
// recorded, and a deployment without the service, still complete.
func Interceptor(t capability.Trust, v *token.Verifier) connect.Interceptor {
	return authn.NewServerInterceptor(v,
		authn.AllowAnonymous(capabilityv1connect.CapabilityServiceExerciseProcedure, capabilityv1connect.CapabilityServiceCompensateProcedure),
		authn.RequireWorkload(capabilityv1connect.CapabilityServiceName, v, t.OrderProcessing.Issuer))
}
