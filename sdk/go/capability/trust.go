package capability

import (
	"context"
	"errors"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Peer names a token issuer a service trusts and where its keys come from:
// a *keys.Ring in process, or a jwks.Cache source for an issuer reached by
// URL.
type Peer struct {
	Issuer string
	Keys   keys.Source
	// Loaded, for keys fetched by URL, reports whether the issuer's key
	// set has been loaded at least once (process.Peers.Loaded): nil once it
	// has, else it tries to fetch it. Nil for keys in process, which are
	// always there. A service adds the gateway's to its readiness checks
	// (health.GatewayKeys); see package health for why no other peer's.
	Loaded func(ctx context.Context) error
}

// Trust is what every domain service trusts, and how. Embed it in a domain's
// Config; capabilityrpc turns it into the domain's verifier and issuer.
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

// Check returns ErrIncompleteTrust unless every field of t is set.
func (t Trust) Check() error {
	if t.Keys == nil || t.Gateway.Keys == nil || t.Gateway.Issuer == "" || t.TrustDomain == "" ||
		t.OrderProcessing.Keys == nil || t.OrderProcessing.Issuer == "" {
		return ErrIncompleteTrust
	}
	return nil
}
