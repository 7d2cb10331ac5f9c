package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/server"
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
	// DefaultAuthFailureBurst is how many failed authentications a client
	// may have in a row before it is refused without verification: room
	// for a browser whose tabs all hold the same expired token, or a few
	// users behind one NAT whose tokens expire together.
	DefaultAuthFailureBurst = 20
	// DefaultAuthFailureRefill gives a client one failed authentication back
	// every 200 ms (5 a second): at most 5 signature verifications a second
	// for an address that sends only forged tokens, about 0.4 ms of CPU
	// (74 µs each, BenchmarkForgedToken).
	DefaultAuthFailureRefill = 200 * time.Millisecond
	// DefaultAuthFailureClients bounds the clients whose failures are
	// remembered: 65,536, about 14 MiB at most (224 bytes a client,
	// measured by TestBudgetMemory).
	DefaultAuthFailureClients = 1 << 16
	// DefaultDiscoveryRefresh re-reads discovery documents hourly, as the
	// JWKS are refreshed.
	DefaultDiscoveryRefresh = time.Hour
	// DefaultDiscoveryRetry is the first wait before a failed discovery is
	// tried again: 1 s, then 2 s, 4 s ... up to DiscoveryRefresh.
	DefaultDiscoveryRetry = time.Second
)

// ForeignAlgorithms are the algorithms accepted by default from a foreign
// provider: RS256 first, which RFC 9068 section 2.1 requires.
var ForeignAlgorithms = []string{keys.RS256, keys.PS256, keys.ES256, keys.EdDSA}

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

// Issuer is one access-token issuer the gateway trusts: tokenrelay's own
// identity service (Keys set, Profile nil), or a foreign OpenID Connect
// provider (Keys nil, or a Profile).
//
// The identity service is held to the strict rules of every token
// tokenrelay mints (header alg, kid and typ only; typ at+jwt; EdDSA or
// ES256; 15 minutes at most), may grant every scope, admin included, and
// its subjects ("usr_...") reach the services as they are.
//
// A foreign provider is verified by its Profile (token.AccessProfile: its
// algorithms, typ values, lifetime, leeway, and where its scopes, subject
// and client id are); it grants no "admin" unless its ScopeMap maps one
// of its scopes to it; and its subjects reach the services qualified by
// its issuer (see ForeignSubject), so that they never collide with a
// local user's or another provider's.
type Issuer struct {
	// Issuer is the iss of its tokens; for an OIDC provider, its issuer URL.
	Issuer string
	// Audience is the aud its tokens must carry. Default DefaultAudience.
	Audience string
	// Keys is the issuer's key source (a *keys.Ring in process, or a JWKS
	// source). When nil, the issuer is an OpenID Connect provider whose
	// keys are found through its discovery document
	// (<Issuer>/.well-known/openid-configuration), re-read every
	// Config.DiscoveryRefresh.
	Keys keys.Source
	// Algorithms accepted from it. Default keys.EdDSA and keys.ES256 for
	// the identity service; keys.RS256, keys.PS256, keys.ES256 and
	// keys.EdDSA for a foreign provider. none and HMAC never are.
	Algorithms []string
	// Scopes, when not empty, are the only tokenrelay scopes the issuer
	// may grant (after ScopeMap): others are left out of the transaction
	// token.
	Scopes []string
	// Profile makes the issuer a foreign provider even with Keys, and says
	// how its tokens are read. Nil for a provider without Keys: the
	// default Profile (RFC 9068).
	Profile *Profile
}

// Profile is how the gateway reads a foreign provider's access tokens.
type Profile struct {
	// AccessProfile: typ values, lifetime, leeway, where the scopes,
	// subject and client id are. Its zero value is RFC 9068's profile.
	token.AccessProfile
	// ScopeMap maps each scope (or role) of the provider to the tokenrelay
	// scopes it grants, such as {"shop-user": ["shop"], "shop-admin":
	// ["shop", "admin"]}; the provider's scopes that it does not name grant
	// nothing. When empty, the provider's scopes pass as they are, except
	// "admin": a foreign provider grants admin only through a ScopeMap
	// that says so.
	ScopeMap map[string][]string
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
	// AuthFailureBurst is each client's budget of failed authentications:
	// access tokens presented and refused as invalid (forged, tampered,
	// expired, for another audience or issuer). Once a client has spent
	// it, its requests for procedures that need a token are refused with
	// ResourceExhausted (HTTP 429 and Retry-After for plain HTTP) before
	// their token is looked at, so that a flood of forged tokens costs no
	// signature verification, and its connections are closed (after that
	// answer, and as they are accepted: Gateway.AcceptConn) until the
	// budget refills. Successful authentications, requests
	// without a token and the anonymous procedures spend nothing. A
	// client is its peer address (the TCP peer: the gateway trusts no
	// X-Forwarded-For), an IPv6 client its /64: behind a reverse proxy
	// every client has the proxy's address and would share one budget, so
	// disable it there and limit at the proxy. Default
	// DefaultAuthFailureBurst; negative: no budget.
	AuthFailureBurst int
	// AuthFailureRefill is how often a client gets one failed
	// authentication back, up to AuthFailureBurst. Default
	// DefaultAuthFailureRefill.
	AuthFailureRefill time.Duration
	// AuthFailureClients bounds the memory of the budgets: beyond it, the
	// client whose last failure is the oldest is forgotten (and starts
	// again with a full budget). Default DefaultAuthFailureClients.
	AuthFailureClients int
	// Clock is the time of the failure budgets. Default time.Now.
	Clock func() time.Time
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
	// DiscoveryRefresh is how often Run re-reads each OIDC provider's
	// discovery document, so that a changed jwks_uri is followed. Default
	// DefaultDiscoveryRefresh.
	DiscoveryRefresh time.Duration
	// DiscoveryRetry is the first wait of Run before it tries a failed
	// discovery again; each failure doubles it, up to DiscoveryRefresh,
	// and a random tenth is added so that replicas spread their retries.
	// Default DefaultDiscoveryRetry.
	DiscoveryRetry time.Duration
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
	// a label (metrics.Registry.Observe does). Observe must be fast and safe
	// for concurrent use.
	Observe func(procedure string, err error, d time.Duration)
}

// ErrConfig reports an incomplete or invalid Config.
var ErrConfig = errors.New("gateway: invalid Config")

// validate reports the first fault of c that New can see without a
// network round trip. Route URLs are checked where they are parsed (see
// balance).
func (c *Config) validate() error {
	if c.Keys == nil || c.Logger == nil || len(c.Issuers) == 0 || len(c.Routes) == 0 {
		return fmt.Errorf("%w: Keys, Logger, Issuers and Routes are required", ErrConfig)
	}
	seen := make(map[string]bool, len(c.Routes))
	for _, rt := range c.Routes {
		switch {
		case rt.Service == capabilityv1connect.CapabilityServiceName:
			return fmt.Errorf("%w: CapabilityService is never routed", ErrConfig)
		case rt.Service == "" || strings.ContainsAny(rt.Service, "/ ") || seen[rt.Service]:
			return fmt.Errorf("%w: route service %q empty, malformed or repeated", ErrConfig, rt.Service)
		}
		seen[rt.Service] = true
	}
	issuers := make(map[string]bool, len(c.Issuers))
	for _, is := range c.Issuers {
		if is.Issuer == "" || issuers[is.Issuer] {
			return fmt.Errorf("%w: an Issuer needs its iss, once", ErrConfig)
		}
		issuers[is.Issuer] = true
		if is.Profile != nil && strings.Contains(is.Issuer, subjectSeparator) {
			// The issuer qualifies its subjects: ForeignSubject must be
			// unambiguous.
			return fmt.Errorf("%w: issuer %q of a foreign provider contains %q", ErrConfig, is.Issuer, subjectSeparator)
		}
	}
	return nil
}

// withDefaults returns c with every unset field at its documented default.
// The slices it fills are shared with the package defaults: they are only
// read.
func (c Config) withDefaults() Config {
	c.Name = or(c.Name, DefaultName)
	c.TrustDomain = or(c.TrustDomain, DefaultTrustDomain)
	c.Tenant = or(c.Tenant, DefaultTenant)
	if c.TxnLifetime <= 0 || c.TxnLifetime > DefaultTxnLifetime {
		c.TxnLifetime = DefaultTxnLifetime
	}
	// nil, not empty: an empty list configures none.
	if c.AnonymousProcedures == nil {
		c.AnonymousProcedures = DefaultAnonymousProcedures
	}
	if c.AdminProcedures == nil {
		c.AdminProcedures = DefaultAdminProcedures
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.AuthFailureBurst == 0 {
		c.AuthFailureBurst = DefaultAuthFailureBurst
	}
	if c.AuthFailureRefill <= 0 {
		c.AuthFailureRefill = DefaultAuthFailureRefill
	}
	if c.AuthFailureClients <= 0 {
		c.AuthFailureClients = DefaultAuthFailureClients
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Fallback == nil {
		c.Fallback = http.NotFoundHandler()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.DiscoveryRefresh <= 0 {
		c.DiscoveryRefresh = DefaultDiscoveryRefresh
	}
	if c.DiscoveryRetry <= 0 {
		c.DiscoveryRetry = DefaultDiscoveryRetry
	}
	if c.Transport == nil {
		c.Transport = server.H2Transport()
	}
	issuers := make([]Issuer, len(c.Issuers))
	for i, is := range c.Issuers {
		is.Audience = or(is.Audience, DefaultAudience)
		if is.Keys == nil && is.Profile == nil {
			is.Profile = &Profile{}
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = []string{keys.EdDSA, keys.ES256}
			if is.Profile != nil {
				is.Algorithms = ForeignAlgorithms
			}
		}
		issuers[i] = is
	}
	c.Issuers = issuers
	return c
}

func or(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func set(v []string) map[string]bool {
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}
