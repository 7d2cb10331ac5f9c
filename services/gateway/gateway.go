package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/budget"
	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Headers a client may never supply: the gateway drops them from every
// request, with every variant of their names that a server could read as
// them (any case, "_" for "-"), and sets Txn-Token itself.
var droppedHeaders = []string{authn.TxnHeader, authn.WorkloadHeader}

// dropped reports whether the header name is one of droppedHeaders, or a
// variant: a server behind a CGI-style gateway or a proxy that maps "_"
// to "-" would read Txn_Token as Txn-Token.
func dropped(name string) bool {
	for _, h := range droppedHeaders {
		if len(name) == len(h) && strings.EqualFold(strings.ReplaceAll(name, "_", "-"), h) {
			return true
		}
	}
	return false
}

// Gateway is the public handler. It is safe for concurrent use.
type Gateway struct {
	name, trustDomain, tenant string
	lifetime                  time.Duration
	keys                      *keys.Ring
	issuer                    *token.Issuer
	verifier                  *token.Verifier
	cache                     *jwks.Cache
	grants                    map[string]issuerGrant // by issuer
	discovery                 discovery
	routes                    map[string]http.Handler
	anonymous, admin          map[string]bool
	cors                      cors
	maxBody                   int64
	maxHeader                 int
	fallback                  http.Handler
	log                       *slog.Logger
	errs                      *connect.ErrorWriter
	observe                   func(string, error, time.Duration)
	challenges                challenges
	budget                    *budget.Budget[netip.Prefix] // nil: no budget of failed authentications
	now                       func() time.Time
}

// New builds the gateway. It reads the discovery document of every Issuer
// without Keys once; a provider whose document cannot be read or used
// (ErrDiscovery) is logged and left not ready (Ready) until Run reads it,
// so that the gateway starts, and serves the other issuers, while a
// provider is down.
func New(ctx context.Context, cfg Config) (_ *Gateway, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Gateway{
		name: cfg.Name, trustDomain: cfg.TrustDomain, tenant: cfg.Tenant, lifetime: cfg.TxnLifetime,
		keys: cfg.Keys, grants: map[string]issuerGrant{},
		anonymous: set(cfg.AnonymousProcedures), admin: set(cfg.AdminProcedures),
		cors: newCORS(cfg.AllowedOrigins), maxBody: cfg.MaxBodyBytes, maxHeader: cfg.MaxHeaderBytes,
		fallback: cfg.Fallback, log: cfg.Logger, errs: connect.NewErrorWriter(), observe: cfg.Observe,
		challenges: newChallenges(cfg.TrustDomain), now: cfg.Clock,
		discovery: discovery{
			refresh: cfg.DiscoveryRefresh, retry: cfg.DiscoveryRetry, now: time.Now, log: cfg.Logger,
			get: func(ctx context.Context, issuer string) (string, error) { return discover(ctx, cfg.HTTPClient, issuer) },
		},
	}
	if cfg.AuthFailureBurst > 0 {
		g.budget = budget.New[netip.Prefix](cfg.AuthFailureBurst, cfg.AuthFailureRefill, cfg.AuthFailureClients)
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.routes, err = g.routeTable(cfg.Routes, cfg.Transport); err != nil {
		return nil, err
	}
	if err = g.trust(ctx, cfg); err != nil {
		return nil, err
	}
	if g.issuer, err = token.NewIssuer(g.name, cfg.Keys); err != nil {
		return nil, err
	}
	return g, nil
}

// Run keeps the OIDC providers known until ctx is done: it reads each
// discovery document again every Config.DiscoveryRefresh (following a
// changed jwks_uri), retries one that failed with exponential backoff from
// Config.DiscoveryRetry, and refreshes their JWKS (see jwks.Cache.Run).
// Without OIDC providers it just waits. It returns ctx.Err().
func (g *Gateway) Run(ctx context.Context) error {
	if g.cache == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.discovery.run(ctx)
	}()
	err := g.cache.Run(ctx)
	<-done
	return err
}

// Fetches returns the key-set fetches of the OIDC issuers' JWKS (none
// without OIDC issuers), for process.ExportJWKS.
func (g *Gateway) Fetches() (ok, failed int64) {
	if g.cache == nil {
		return 0, 0
	}
	return g.cache.Fetches()
}

// Refused returns the OIDC issuers' JWKS answers refused for their
// content, for process.ExportJWKS.
func (g *Gateway) Refused() int64 {
	if g.cache == nil {
		return 0
	}
	return g.cache.Refused()
}

// Close releases the caches. Stop Run first.
func (g *Gateway) Close() {
	if g.verifier != nil {
		g.verifier.Close()
	}
	if g.cache != nil {
		g.cache.Close()
	}
}

// Name returns the iss of the transaction tokens, for the services'
// capability.Trust.Gateway.Issuer.
func (g *Gateway) Name() string { return g.name }

// TrustDomain returns the aud of the transaction tokens.
func (g *Gateway) TrustDomain() string { return g.trustDomain }

// JWKS serves the transaction-token keys: mount it at
// keys.WellKnownPath of the address the services reach the gateway at.
// Services in the same process use Config.Keys directly.
func (g *Gateway) JWKS() http.Handler { return g.keys.Handler() }

// Server returns an http.Server for the gateway, built by server.New:
// HTTP/1.1, HTTP/2 and unencrypted HTTP/2 (gRPC without TLS), a 10 s
// header timeout, a 2 min idle timeout, Config.MaxHeaderBytes, no read or
// write timeout (WatchOrder streams), its own errors logged to
// Config.Logger at level Warn. Serve it on a listener from Listen.
func (g *Gateway) Server() *http.Server {
	return server.New(g, server.WithMaxHeaderBytes(g.maxHeader), server.WithLogger(g.log))
}

// Listen listens on addr for Server, resetting the connections of a client
// that has spent its budget of failed authentications as they are
// accepted (server.Listen with AcceptConn). Wrap it with tls.NewListener
// to serve HTTPS.
func (g *Gateway) Listen(addr string) (net.Listener, error) {
	return server.Listen(addr, g.AcceptConn)
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r = r.Clone(r.Context()) // our own headers to edit
	for k := range r.Header {
		if dropped(k) {
			delete(r.Header, k)
		}
	}
	if g.cors.handle(w, r) {
		return
	}
	if headerSize(r.Header) > g.maxHeader {
		g.fail(w, r, connect.NewError(connect.CodeResourceExhausted, errHeaderTooLarge))
		return
	}
	service, ok := rpcService(r.URL.Path)
	if !ok {
		g.fallback.ServeHTTP(w, r)
		return
	}
	outcome := g.serveRPC(w, r, service, start)
	if g.observe != nil {
		g.observe(r.URL.Path, outcome, time.Since(start))
	}
}

// serveRPC refuses or passes on an RPC of service, and returns its outcome
// for Config.Observe: the gateway's refusal, or the upstream's answer.
func (g *Gateway) serveRPC(w http.ResponseWriter, r *http.Request, service string, start time.Time) error {
	refuse := func(err error) error {
		g.fail(w, r, err)
		return err
	}
	route := g.routes[service]
	if route == nil { // CapabilityService never has a route
		return refuse(connect.NewError(connect.CodeNotFound, errNoService))
	}
	procedure := r.URL.Path
	if err := g.withinBudget(r, procedure); err != nil {
		return refuse(err)
	}
	if err := g.bufferBody(r); err != nil {
		return refuse(err)
	}
	raw, txn, err := g.admit(r, procedure)
	if err != nil {
		return refuse(err)
	}
	r.Header.Del("Authorization") // the access token is for the gateway only
	r.Header.Set(authn.TxnHeader, raw)
	r = r.WithContext(authn.ContextWithTransaction(r.Context(), raw, txn))
	sw := &statusWriter{ResponseWriter: w}
	route.ServeHTTP(sw, r)
	outcome := sw.outcome()
	g.log.InfoContext(r.Context(), "rpc", "procedure", procedure, "sub", txn.Subject,
		"code", codeName(outcome), "status", sw.status(), "duration_ms", time.Since(start).Milliseconds())
	return outcome
}
