// Package gateway is tokenrelay's single public origin: an http.Handler in
// front of every service, for browsers, buf curl and generated clients,
// over Connect, gRPC and gRPC-Web.
//
// For every RPC it
//
//  1. answers CORS for the configured origins (preflights included) and
//     refuses oversized headers and bodies (ResourceExhausted);
//  2. drops any client-supplied Txn-Token and Workload-Token header: a
//     client can never supply either;
//  3. routes by service name, refusing CapabilityService always and any
//     service without a route (NotFound, before any other check);
//  4. verifies the access token (Authorization: Bearer, token.Access, RFC
//  9068. against the configured issuers, except for the anonymous
//     procedures (Login and Refresh): no, bad, expired, wrongly signed,
//     wrong-audience or unknown-issuer tokens are Unauthenticated;
//  5. refuses the admin procedures (GrantCoupon, GrantPoints,
//     AddPaymentMethod) without the "admin" scope (PermissionDenied);
//  6. mints one transaction token (token.Transaction) with its own key
//     ring: txn random, sub the access token's sub ("anonymous" for the
//     anonymous procedures), scope the access token's scope, tctx
//     {"tenant": Config.Tenant}, req_wl Config.Name, aud Config.TrustDomain,
//     lifetime at most 5 minutes; the access token itself goes no further;
//  7. passes the request on: in process to an http.Handler (the embedded
//     default), or by URL through httputil.ReverseProxy with HTTP/2
//     (h2c for http:// upstreams, so gRPC works), streaming responses
//     flushed as they come. A route may name several upstream URLs
//     (replicas of one service): requests take them in turn (round
//     robin), and a request whose upstream refuses the connection, so
//     that nothing was sent, is retried on the next one (failover).
//
// Errors the gateway writes itself are Connect, gRPC or gRPC-Web errors as
// the request's protocol needs (connect.ErrorWriter). Logs carry the txn
// and never a token.
//
// # Issuers
//
// An Issuer with Keys (a keys.Source in process, such as the embedded
// identity service's ring) is trusted directly. An Issuer without Keys is
// an OpenID Connect provider: New fetches <issuer>/.well-known/openid-configuration,
// requires its "issuer" to equal the configured one exactly, and verifies
// tokens with the keys at its jwks_uri through a jwks.Cache (refreshed by
// Run). The provider must issue RFC 9068 access tokens (typ at+jwt) signed
// with EdDSA or ES256, with the configured audience, a client_id and a jti:
// the SDK's token engine accepts nothing weaker.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Defaults of Config.
const (
	// DefaultName is the iss of the transaction tokens and their req_wl.
	DefaultName = "gateway"
	// DefaultTrustDomain is the aud of the transaction tokens: every
	// service's capability.Trust.TrustDomain must be the same.
	DefaultTrustDomain = "tokenrelay"
	// DefaultTenant is the tctx tenant of the transaction tokens.
	DefaultTenant = "default"
	// DefaultAudience is the audience access tokens must carry when an
	// Issuer names none (identity.DefaultAudience has the same value).
	DefaultAudience = "tokenrelay-api"
	// DefaultMaxBodyBytes bounds a request body: 1 MiB.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxHeaderBytes bounds the request headers: 64 KiB.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultTxnLifetime is the lifetime of a transaction token, the
	// maximum the token engine allows.
	DefaultTxnLifetime = 5 * time.Minute
	// AnonymousSubject is the sub of the transaction tokens minted for the
	// anonymous procedures.
	AnonymousSubject = "anonymous"
)

// DefaultAnonymousProcedures pass without an access token: logging in and
// refreshing are how a client gets one.
var DefaultAnonymousProcedures = []string{
	identityv1connect.IdentityServiceLoginProcedure,
	identityv1connect.IdentityServiceRefreshProcedure,
}

// DefaultAdminProcedures need the "admin" scope.
var DefaultAdminProcedures = []string{
	couponsv1connect.CouponsServiceGrantCouponProcedure,
	pointsv1connect.PointsServiceGrantPointsProcedure,
	paymentsv1connect.PaymentsServiceAddPaymentMethodProcedure,
}

// Headers a client may never supply: the gateway drops them from every
// request and sets Txn-Token itself.
var droppedHeaders = []string{authn.TxnHeader, authn.WorkloadHeader}

// Issuer is one access-token issuer the gateway trusts.
type Issuer struct {
	// Issuer is the iss of its tokens; for an OIDC provider, its issuer URL.
	Issuer string
	// Audience is the aud its tokens must carry. Default DefaultAudience.
	Audience string
	// Keys is the issuer's key source in this process (a *keys.Ring). When
	// nil, the issuer is an OpenID Connect provider and its keys are
	// discovered from its issuer URL.
	Keys keys.Source
	// Algorithms accepted from it. Default keys.EdDSA and keys.ES256.
	Algorithms []string
	// Scopes, when not empty, are the only scopes the issuer may grant:
	// others in its tokens are left out of the transaction token. Use it to
	// keep an external provider from granting "admin".
	Scopes []string
}

// Route sends the RPCs of one service upstream.
type Route struct {
	// Service is the fully qualified service name, such as
	// pointsv1connect.PointsServiceName.
	Service string
	// Handler serves the service in process (the embedded default). It may
	// be a mux shared by every service: the gateway routes only the
	// services it has a Route for.
	Handler http.Handler
	// URL is the upstream's base URL when scaled out, used when Handler is
	// nil. http:// upstreams must speak HTTP/2 without TLS (h2c, prior
	// knowledge), as tokenrelay servers do.
	URL string
	// URLs are further upstreams of the same service (its replicas), used
	// with URL when Handler is nil: requests go to URL and URLs in turn,
	// and move on to the next one when an upstream refuses the
	// connection. Replicas must be interchangeable: stateless, sharing
	// their database and keys.
	URLs []string
}

// Config configures the gateway. Keys, Logger, at least one Issuer and one
// Route are required.
type Config struct {
	// Name is the iss and req_wl of the transaction tokens. Default
	// DefaultName.
	Name string
	// Keys signs the transaction tokens; services trust its JWKS (JWKS).
	Keys *keys.Ring
	// TrustDomain is the aud of the transaction tokens. Default
	// DefaultTrustDomain.
	TrustDomain string
	// Tenant is the tctx tenant of the transaction tokens. Default
	// DefaultTenant.
	Tenant string
	// TxnLifetime is the transaction tokens' lifetime, at most (and by
	// default) DefaultTxnLifetime.
	TxnLifetime time.Duration
	// Issuers are the access-token issuers trusted.
	Issuers []Issuer
	// Routes send each service's RPCs upstream. A route for
	// CapabilityService is refused.
	Routes []Route
	// AnonymousProcedures pass without an access token. Default
	// DefaultAnonymousProcedures.
	AnonymousProcedures []string
	// AdminProcedures need the admin scope. Default DefaultAdminProcedures.
	AdminProcedures []string
	// AllowedOrigins get CORS answers: exact origins such as
	// "http://127.0.0.1:8080", or "*" for any. Default none.
	AllowedOrigins []string
	// MaxBodyBytes bounds a request body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds the request headers (names and values).
	// Default DefaultMaxHeaderBytes; Server sets it on the http.Server too.
	MaxHeaderBytes int
	// Fallback serves the requests whose path is not an RPC path
	// ("/<package>.<Service>/<Method>"): the web checkout, the identity
	// service's discovery document. Default: 404.
	Fallback http.Handler
	// Logger receives one line per request, with its txn; wrap its handler
	// with authn.NewLogHandler.
	Logger *slog.Logger
	// HTTPClient fetches OIDC discovery documents and JWKS. Default a
	// client with http.DefaultTransport.
	HTTPClient *http.Client
	// Transport carries proxied requests to URL routes. Default a clone of
	// http.DefaultTransport speaking HTTP/2 only (h2c for http://).
	Transport http.RoundTripper
	// Observe, when set, is called once for every RPC request after it is
	// answered, with its procedure, its outcome and its duration (for a
	// stream, until it ends). The outcome is nil on success, else an error
	// whose connect.CodeOf is the code: the gateway's own refusal (wrapping
	// the token package's sentinel for a refused access token, or
	// authn.ErrMissingToken), or the upstream's code where the gateway can
	// read it (gRPC's grpc-status, a Connect unary error's code; a
	// Connect stream's end-of-stream error is not read). The procedure is
	// the request path as sent: bound its cardinality before using it as
	// a label (server.Metrics.Observe does). Observe must be fast and safe
	// for concurrent use.
	Observe func(procedure string, err error, d time.Duration)
}

// ErrConfig reports an incomplete or invalid Config.
var ErrConfig = errors.New("gateway: invalid Config")

// Gateway is the public handler. It is safe for concurrent use.
type Gateway struct {
	name, trustDomain, tenant string
	lifetime                  time.Duration
	keys                      *keys.Ring
	issuer                    *token.Issuer
	verifier                  *token.Verifier
	cache                     *jwks.Cache
	scopes                    map[string][]string // issuer -> allowed scopes
	routes                    map[string]http.Handler
	anonymous, admin          map[string]bool
	cors                      cors
	maxBody                   int64
	maxHeader                 int
	fallback                  http.Handler
	log                       *slog.Logger
	errs                      *connect.ErrorWriter
	observe                   func(string, error, time.Duration)
}

// New builds the gateway. It fetches the discovery document of every
// Issuer without Keys and fails (ErrDiscovery) when one cannot be used, so
// that a misconfigured provider is found at startup.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.Keys == nil || cfg.Logger == nil || len(cfg.Issuers) == 0 || len(cfg.Routes) == 0 {
		return nil, fmt.Errorf("%w: Keys, Logger, Issuers and Routes are required", ErrConfig)
	}
	g := &Gateway{
		name: or(cfg.Name, DefaultName), trustDomain: or(cfg.TrustDomain, DefaultTrustDomain), tenant: or(cfg.Tenant, DefaultTenant),
		lifetime: cfg.TxnLifetime, keys: cfg.Keys, scopes: map[string][]string{}, routes: map[string]http.Handler{},
		anonymous: set(cfg.AnonymousProcedures, DefaultAnonymousProcedures), admin: set(cfg.AdminProcedures, DefaultAdminProcedures),
		cors: newCORS(cfg.AllowedOrigins), maxBody: cfg.MaxBodyBytes, maxHeader: cfg.MaxHeaderBytes,
		fallback: cfg.Fallback, log: cfg.Logger, errs: connect.NewErrorWriter(), observe: cfg.Observe,
	}
	if g.lifetime <= 0 || g.lifetime > DefaultTxnLifetime {
		g.lifetime = DefaultTxnLifetime
	}
	if g.maxBody <= 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.maxHeader <= 0 {
		g.maxHeader = DefaultMaxHeaderBytes
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	transport := cfg.Transport
	if transport == nil {
		transport = h2Transport()
	}
	for _, rt := range cfg.Routes {
		switch {
		case rt.Service == capabilityv1connect.CapabilityServiceName:
			return nil, fmt.Errorf("%w: CapabilityService is never routed", ErrConfig)
		case rt.Service == "" || strings.ContainsAny(rt.Service, "/ ") || g.routes[rt.Service] != nil:
			return nil, fmt.Errorf("%w: route service %q empty, malformed or repeated", ErrConfig, rt.Service)
		case rt.Handler != nil:
			g.routes[rt.Service] = rt.Handler
		default:
			h, err := g.balance(append([]string{rt.URL}, rt.URLs...), transport)
			if err != nil {
				return nil, err
			}
			g.routes[rt.Service] = h
		}
	}
	opts := []token.Option{token.WithVerifiedCache(1 << 14)}
	for _, is := range cfg.Issuers {
		if is.Issuer == "" {
			return nil, fmt.Errorf("%w: an Issuer needs its iss", ErrConfig)
		}
		src := is.Keys
		if src == nil {
			uri, err := discover(ctx, client, is.Issuer)
			if err != nil {
				g.Close()
				return nil, err
			}
			if g.cache == nil {
				if g.cache, err = jwks.New(jwks.WithHTTPClient(client), jwks.WithLogger(cfg.Logger)); err != nil {
					return nil, err
				}
			}
			if src, err = g.cache.Add(is.Issuer, uri); err != nil {
				g.Close()
				return nil, err
			}
		}
		algs := is.Algorithms
		if len(algs) == 0 {
			algs = []string{keys.EdDSA, keys.ES256}
		}
		opts = append(opts, token.Trust(is.Issuer, src, token.Accept(token.Access, or(is.Audience, DefaultAudience)), token.Algorithms(algs...)))
		if len(is.Scopes) > 0 {
			g.scopes[is.Issuer] = is.Scopes
		}
	}
	var err error
	if g.verifier, err = token.NewVerifier(opts...); err != nil {
		g.Close()
		return nil, err
	}
	if g.issuer, err = token.NewIssuer(g.name, cfg.Keys); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func or(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func set(v, d []string) map[string]bool {
	if v == nil {
		v = d
	}
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

// Run refreshes the JWKS of the OIDC issuers until ctx is done (see
// jwks.Cache.Run); without OIDC issuers it just waits. It returns ctx.Err().
func (g *Gateway) Run(ctx context.Context) error {
	if g.cache == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return g.cache.Run(ctx)
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

// Server returns an http.Server for the gateway on addr: HTTP/1.1,
// HTTP/2 and unencrypted HTTP/2 (gRPC without TLS), a 10 s header timeout,
// MaxHeaderBytes, and no read or write timeout (WatchOrder streams).
func (g *Gateway) Server(addr string) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Addr: addr, Handler: g, Protocols: p,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: g.maxHeader,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

// h2Transport speaks HTTP/2 only: over TLS for https, h2c with prior
// knowledge for http, as gRPC needs.
func h2Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP2(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// balancer sends each request to one of its upstreams, in turn, and on to
// the next when one refuses the connection.
type balancer struct {
	g         *Gateway
	next      atomic.Uint64
	upstreams []*upstream
}

type upstream struct {
	host  string
	proxy *httputil.ReverseProxy
}

// attempt is how an upstream's ErrorHandler tells the balancer that the
// connection was refused and nothing was written, so that the request may
// go to the next upstream.
type attempt struct {
	refused bool
	err     error
}

type attemptKey struct{}

// balance returns the handler of a route to the upstreams at urls.
func (g *Gateway) balance(urls []string, transport http.RoundTripper) (http.Handler, error) {
	b := &balancer{g: g}
	for _, base := range urls {
		target, err := url.Parse(base)
		if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
			return nil, fmt.Errorf("%w: route URL %q is not an http(s) URL", ErrConfig, base)
		}
		b.upstreams = append(b.upstreams, &upstream{host: target.Host, proxy: g.proxy(target, transport)})
	}
	return b, nil
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := uint64(len(b.upstreams))
	first := b.next.Add(1) - 1
	for i := range n {
		u := b.upstreams[(first+i)%n]
		a := &attempt{}
		req := r.WithContext(context.WithValue(r.Context(), attemptKey{}, a))
		if r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				break
			}
			req.Body = body
		}
		u.proxy.ServeHTTP(w, req)
		if !a.refused {
			return
		}
		b.g.log.WarnContext(r.Context(), "upstream refused the connection, trying the next", "upstream", u.host, "err", a.err)
	}
	b.g.fail(w, r, connect.NewError(connect.CodeUnavailable, errors.New("service unavailable")))
}

// proxy returns a reverse proxy to target.
func (g *Gateway) proxy(target *url.URL, transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // server streams and gRPC: pass every frame on at once
		ErrorLog:      slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if a, ok := r.Context().Value(attemptKey{}).(*attempt); ok && connectionRefused(err) {
				// Nothing reached the upstream: the balancer may try the next.
				a.refused, a.err = true, err
				return
			}
			g.log.WarnContext(r.Context(), "upstream failed", "upstream", target.Host, "err", err)
			g.fail(w, r, connect.NewError(connect.CodeUnavailable, errors.New("service unavailable")))
		},
	}
}

// connectionRefused reports a failure to connect, before any byte of the
// request was sent: a refused, unreachable or timed-out dial. A request
// that failed later may have reached the upstream and is never retried.
func connectionRefused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Errors the gateway answers with. Fixed texts: they never echo input.
var (
	errNoService      = errors.New("no such service")
	errMissingToken   = missingToken{}
	errAdminOnly      = errors.New("this procedure needs the admin scope")
	errBodyTooLarge   = errors.New("request body too large")
	errHeaderTooLarge = errors.New("request headers too large")
	errInternal       = errors.New("internal error")
)

// missingToken is the refusal of a request without an access token; it
// wraps authn.ErrMissingToken, so that metrics count it with the other
// missing tokens.
type missingToken struct{}

func (missingToken) Error() string {
	return "missing access token: send Authorization: Bearer <token>"
}
func (missingToken) Unwrap() error { return authn.ErrMissingToken }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r = r.Clone(r.Context()) // our own headers to edit
	for _, h := range droppedHeaders {
		r.Header.Del(h)
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
		if g.fallback == nil {
			http.NotFound(w, r)
			return
		}
		g.fallback.ServeHTTP(w, r)
		return
	}
	procedure := r.URL.Path
	refuse := func(err error) {
		g.fail(w, r, err)
		if g.observe != nil {
			g.observe(procedure, err, time.Since(start))
		}
	}
	upstream := g.routes[service]
	if upstream == nil { // CapabilityService never has a route
		refuse(connect.NewError(connect.CodeNotFound, errNoService))
		return
	}
	if err := g.bufferBody(r); err != nil {
		refuse(err)
		return
	}
	claims, err := g.authenticate(r, procedure)
	if err != nil {
		g.log.InfoContext(r.Context(), "request refused", "procedure", procedure, "code", connect.CodeOf(err).String(), "err", err)
		refuse(err)
		return
	}
	raw, txn, err := token.Issue(r.Context(), g.issuer, token.Transaction, claims)
	if err != nil {
		g.log.ErrorContext(r.Context(), "mint transaction token", "procedure", procedure, "err", err)
		refuse(connect.NewError(connect.CodeInternal, errInternal))
		return
	}
	r.Header.Del("Authorization") // the access token is for the gateway only
	r.Header.Set(authn.TxnHeader, raw)
	r = r.WithContext(authn.ContextWithTransaction(r.Context(), raw, txn))
	sw := &statusWriter{ResponseWriter: w}
	upstream.ServeHTTP(sw, r)
	g.log.InfoContext(r.Context(), "rpc", "procedure", procedure, "sub", txn.Subject,
		"status", sw.status(), "duration_ms", time.Since(start).Milliseconds())
	if g.observe != nil {
		g.observe(procedure, sw.outcome(), time.Since(start))
	}
}

// authenticate verifies the access token (unless procedure is anonymous)
// and returns the claims of the transaction token to mint.
func (g *Gateway) authenticate(r *http.Request, procedure string) (token.TransactionClaims, error) {
	sub, scope := AnonymousSubject, ""
	if !g.anonymous[procedure] {
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			return token.TransactionClaims{}, withChallenge(connect.NewError(connect.CodeUnauthenticated, errMissingToken))
		}
		access, err := token.Verify(r.Context(), g.verifier, token.Access, raw)
		if err != nil {
			cerr := token.ConnectError(fmt.Errorf("access token: %w", err))
			if cerr.Code() == connect.CodeUnauthenticated {
				withChallenge(cerr)
			}
			return token.TransactionClaims{}, cerr
		}
		sub, scope = access.Subject, g.grant(access.Issuer, access.Scope)
	}
	if g.admin[procedure] && !slices.Contains(strings.Fields(scope), authn.AdminScope) {
		return token.TransactionClaims{}, connect.NewError(connect.CodePermissionDenied, errAdminOnly)
	}
	c := token.TransactionClaims{
		Registered:         token.Registered{Subject: sub, Audience: []string{g.trustDomain}},
		Scope:              scope,
		Context:            map[string]string{"tenant": g.tenant},
		RequestingWorkload: g.name,
	}
	if g.lifetime != token.Transaction.DefaultLifetime() {
		c.ExpiresAt = time.Now().Add(g.lifetime)
	}
	return c, nil
}

// grant returns the scopes of an access token that its issuer may grant.
func (g *Gateway) grant(issuer, scope string) string {
	allowed, limited := g.scopes[issuer]
	if !limited {
		return strings.Join(strings.Fields(scope), " ")
	}
	var out []string
	for _, s := range strings.Fields(scope) {
		if slices.Contains(allowed, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

func withChallenge(err *connect.Error) *connect.Error {
	err.Meta().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	return err
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// bufferBody reads the body, refusing more than maxBody bytes, so that an
// oversized request is refused cleanly before it reaches a service. Every
// tokenrelay RPC takes one request message, so the body is small.
func (g *Gateway) bufferBody(r *http.Request) error {
	tooLarge := connect.NewError(connect.CodeResourceExhausted, errBodyTooLarge)
	if r.ContentLength > g.maxBody {
		return tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
	_ = r.Body.Close()
	switch {
	case int64(len(b)) > g.maxBody:
		return tooLarge
	case err != nil:
		return connect.NewError(connect.CodeCanceled, errors.New("reading the request body failed"))
	}
	if enveloped(r.Header.Get("Content-Type")) && !wellFramed(b) {
		// Refused here with a clear code: a service's protocol layer would
		// answer a truncated envelope with Internal.
		return connect.NewError(connect.CodeInvalidArgument, errMalformedEnvelope)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	// A balancer resends the body to the next upstream after a refused
	// connection.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return nil
}

// errMalformedEnvelope reports a gRPC, gRPC-Web or Connect streaming body
// whose length-prefixed messages do not add up to the body.
var errMalformedEnvelope = errors.New("malformed request body: its length-prefixed messages do not match its length")

// enveloped reports whether a content type frames its messages with the
// 5-byte envelope (flags, big-endian length): gRPC, binary gRPC-Web and
// Connect streaming. gRPC-Web's text form is base64 and not checked here.
func enveloped(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	switch {
	case strings.HasPrefix(ct, "application/grpc-web-text"):
		return false
	case ct == "application/grpc", strings.HasPrefix(ct, "application/grpc+"),
		ct == "application/grpc-web", strings.HasPrefix(ct, "application/grpc-web+"),
		strings.HasPrefix(ct, "application/connect+"):
		return true
	}
	return false
}

// wellFramed reports whether b is a sequence of complete envelopes.
func wellFramed(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 5 {
			return false
		}
		n := uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
		if n > uint64(len(b)-5) {
			return false
		}
		b = b[5+n:]
	}
	return true
}

// fail writes err in the request's protocol, or as plain text to a client
// that speaks none of them.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	if g.errs.IsSupported(r) {
		_ = g.errs.Write(w, r, err)
		return
	}
	var cerr *connect.Error
	code := connect.CodeInternal
	msg := errInternal.Error()
	if errors.As(err, &cerr) {
		code, msg = cerr.Code(), cerr.Message()
		for k, v := range cerr.Meta() {
			w.Header()[k] = v
		}
	}
	http.Error(w, msg, httpStatus(code))
}

// httpStatus maps the codes the gateway writes to HTTP statuses (the
// Connect protocol's mapping).
func httpStatus(c connect.Code) int {
	switch c {
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// rpcService returns the service of an RPC path "/<pkg>.<Service>/<Method>".
func rpcService(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", false
	}
	service, method, ok := strings.Cut(rest, "/")
	if !ok || method == "" || strings.Contains(method, "/") || service == "" || service[0] == '.' || !strings.Contains(service, ".") {
		return "", false
	}
	return service, true
}

func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // ": " and CRLF
		}
	}
	return n
}

// statusWriter records the status for the log line, and the beginning of
// an error response's body for its Connect code. It passes Flush and Unwrap
// on, so streaming and trailers work through it.
type statusWriter struct {
	http.ResponseWriter
	code int
	body []byte // the first maxErrorBody bytes of a non-200 response
}

// maxErrorBody bounds what statusWriter keeps of an error body: a Connect
// error's JSON code comes first and is short.
const maxErrorBody = 512

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if s.code != http.StatusOK && len(s.body) < maxErrorBody {
		s.body = append(s.body, b[:min(len(b), maxErrorBody-len(s.body))]...)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// errUpstream carries an upstream's code for Config.Observe.
var errUpstream = errors.New("upstream error")

// outcome returns the response's outcome for Config.Observe: the
// grpc-status of a gRPC response (header or trailer), the code of a
// Connect unary error body, or for any other non-200 status a code from
// the HTTP status.
func (s *statusWriter) outcome() error {
	h := s.Header()
	for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if v := h.Get(k); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			switch {
			case err != nil:
				return connect.NewError(connect.CodeUnknown, errUpstream)
			case n == 0:
				return nil
			}
			return connect.NewError(connect.Code(n), errUpstream)
		}
	}
	if s.status() == http.StatusOK {
		return nil
	}
	var body struct {
		Code connect.Code `json:"code"`
	}
	if json.Unmarshal(s.body, &body) == nil && body.Code != 0 {
		return connect.NewError(body.Code, errUpstream)
	}
	return connect.NewError(httpCode(s.status()), errUpstream)
}

// httpCode maps an HTTP status to a Connect code (the gRPC HTTP mapping).
func httpCode(status int) connect.Code {
	switch status {
	case http.StatusBadRequest:
		return connect.CodeInternal
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return connect.CodeUnavailable
	default:
		return connect.CodeUnknown
	}
}
