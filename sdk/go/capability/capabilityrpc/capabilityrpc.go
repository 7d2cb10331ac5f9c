// Package capabilityrpc binds a domain service to Connect: the
// CapabilityService handler that verifies each confirmation token and hands
// it to the domain, checkout-token verification for the domain's own
// handlers, the conversion of a capability.Record to the wire, the issuer of
// confirmation tokens over the token engine, the authentication interceptor
// of the domain's handlers, and the [Server] a domain's public face holds:
// its verifier and issuer built from its capability.Trust, and the mounting
// of its handlers, JWKS and health. [Face] is what every domain's public
// face shares over it: a domain's [Config], New's wiring of the Server to
// the domain's store, use cases and handlers ([NewFace]), and Register,
// JWKS and Close.
//
// Its rule: this is where the transport meets the relay. It may import
// Connect, the generated capability service, the token engine, authn and
// rpcerr; it runs no SQL (a [Config]'s database goes to the domain's own
// store, its ping to /healthz, and AuditTrail's reads to the audit
// trail's own store, package audit) and never imports the process plumbing
// (server, process, metrics, capabilityd). Domain code (a service's internal/app and
// internal/domain) never imports it: that depends on package capability
// alone, and only a domain's ports and public face import this package.
package capabilityrpc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Server is what a domain's public face holds besides its handlers: the
// verifier of the tokens the domain trusts, the issuer of its confirmation
// tokens, its trust configuration and its health check. A face keeps it in
// an unexported field and offers Register, JWKS and Close over it.
type Server struct {
	verifier *token.Verifier
	issuer   TokenIssuer
	trust    capability.Trust
	ping     func(context.Context) error
	opener   *sealed.Sealer // opens sealed constraints at Exercise and Compensate; nil: none
	log      *slog.Logger
	trail    *audit.Trail // the domain's audit trail: refusals, AuditTrail
}

// ErrIncompleteConfig reports a Server without a health check, logger or
// audit trail.
var ErrIncompleteConfig = errors.New("capabilityrpc: a domain needs a health check (its database ping), a logger and an audit trail")

// New builds the verifier (see NewVerifier) and the confirmation-token
// issuer of domain name. ping checks the domain's database for /healthz;
// log gets CapabilityService's line per call; trail is the domain's audit
// log, where CapabilityService records the tokens it refuses (within each
// presenter's budget, audit.DefaultRefusalBurst) and which AuditTrail
// reads.
func New(name string, trust capability.Trust, ping func(context.Context) error, log *slog.Logger, trail *audit.Log) (*Server, error) {
	if ping == nil || log == nil || trail == nil {
		return nil, ErrIncompleteConfig
	}
	v, err := NewVerifier(name, trust)
	if err != nil {
		return nil, err
	}
	is, err := token.NewIssuer(name, trust.Keys)
	if err != nil {
		v.Close()
		return nil, err
	}
	return &Server{verifier: v, issuer: TokenIssuer{Issuer: is}, trust: trust, ping: ping, log: log,
		trail: &audit.Trail{Log: trail, Service: name, Txn: authn.TxnFrom,
			Refusals: audit.NewRefusalBudget(audit.DefaultRefusalBurst, audit.DefaultRefusalRefill, audit.DefaultRefusalClients, log)}}, nil
}

// Seal makes the server open sealed constraints with s, the domain's own
// sealer (see package sealed), and, when seal is true, seal the constraints
// of every confirmation token it issues. Call it before Register and before
// handing out Issuer.
func (s *Server) Seal(sl *sealed.Sealer, seal bool) {
	s.opener = sl
	if seal {
		s.issuer.Sealer = sl
	}
}

// Checkouts returns the verifier of the checkout tokens the domain's own
// RPCs are called with, for its ports; it records the ones it refuses in
// the domain's audit trail.
func (s *Server) Checkouts() *Checkouts { return NewCheckouts(s.verifier, s.trail, s.log) }

// Issuer returns the issuer of the domain's confirmation tokens, for its
// use cases.
func (s *Server) Issuer() capability.Issuer { return s.issuer }

// Register mounts a domain's handlers on mux: its own service, built by own
// (a generated New...ServiceHandler bound to the domain's implementation),
// and CapabilityService over d; both behind Interceptor, then
// opts' interceptors; the domain's JWKS at keys.WellKnownPath and its
// health at /healthz (the ping, and the gateway's key set loaded once when
// it is fetched by URL: health.GatewayKeys). errs is the domain's error mapping.
func (s *Server) Register(mux *http.ServeMux, own func(...connect.HandlerOption) (string, http.Handler),
	d capability.Domain, errs func(context.Context, error) *connect.Error, opts ...connect.HandlerOption) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(Interceptor(s.trust, s.verifier))}, opts...)
	mux.Handle(own(opts...))
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(NewHandler(s.verifier, d, errs, s.log).OpenSealed(s.opener).Audit(s.trail), opts...))
	mux.Handle("GET "+keys.WellKnownPath, s.trust.Keys.Handler())
	checks := map[string]health.Check{"database": s.ping}
	if s.trust.Gateway.Loaded != nil {
		checks[health.GatewayKeys] = s.trust.Gateway.Loaded
	}
	mux.Handle("GET "+health.Path, health.Handler(checks))
}

// JWKS serves the domain's public keys (Register serves them at
// keys.WellKnownPath).
func (s *Server) JWKS() http.Handler { return s.trust.Keys.Handler() }

// Close releases the verifier's caches.
func (s *Server) Close() { s.verifier.Close() }
