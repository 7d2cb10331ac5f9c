// Package identity is the embedded identity provider: users with argon2id
// password hashes, Login returning an RFC 9068 access token and a refresh
// token, Refresh rotating the refresh token, Logout revoking the session,
// and the OpenID Connect discovery document and JWKS that let the gateway
// (or any resource server) verify its access tokens. This package is its
// public face: a Config and New; the rules, store and handlers live under
// internal/.
//
// # Tokens
//
//   - Access token: token.Access (typ at+jwt), signed with Config.Keys;
//     iss Config.Issuer, sub the user id ("usr_..."), aud Config.Audience,
//     client_id Config.ClientID, scope the user's scopes, a random jti.
//     Lifetime Config.AccessTokenLifetime, at most (and by default) 15
//     minutes.
//   - Refresh token: "rt_" plus 256 random bits (base64url), opaque; only
//     its SHA-256 is stored. It expires 7 days after it was issued
//     (RefreshTokenLifetime) and its session 30 days after login
//     (SessionLifetime), however often it is refreshed. Every Refresh
//     rotates it; a rotated token presented again revokes its whole session
//     (the thief's and the user's copies alike), and the newest token stops
//     working too. A retry of a Refresh with the same idempotency key and
//     the same refresh token within 60 seconds (RetryWindow) returns the
//     first result; for that window only, the result is kept sealed with
//     Config.Vault (AES-256-GCM), then erased. Login with an idempotency key
//     does the same.
//
// # Passwords and lockout
//
// Passwords are hashed with argon2id (RFC 9106) under the OWASP parameters
// m=19 MiB, t=2, p=1, 16-byte salt, 32-byte key, stored as PHC strings that
// record their parameters, and compared in constant time. An unknown user
// name costs the same hash as a wrong password. Wrong password, unknown
// user and every bad refresh token are all Unauthenticated "invalid
// credentials". After 5 failed logins for one user name (MaxFailedLogins)
// within a fixed 15-minute window starting at the first failure
// (LockoutWindow), Login answers ResourceExhausted until the window ends,
// even with the right password; the counter is durable (in the store, so
// shared by replicas) and reset by a successful login. The price of a
// per-name counter is that anyone can lock a name for 15 minutes; per-IP
// throttling belongs in front of the gateway.
//
// # Retention
//
// [Service.Purge] deletes the sessions that expired or were revoked more
// than the retention ago, with all their refresh tokens (a presented token
// of a purged session is unknown: "invalid credentials", as when expired),
// and the login-failure windows older than the retention. Refresh tokens go
// with their session only, so that reuse detection holds for a session's
// whole life. Users are kept.
//
// # Authentication of calls
//
// Every RPC needs a transaction token from the gateway (which mints one with
// sub "anonymous" for Login and Refresh), so that even an anonymous login
// has a txn in every log line.
package identity

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/app"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/domain"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/ports"
)

// Name is the service's workload name.
const Name = "identity"

// Defaults of Config.
const (
	// DefaultIssuer is the iss of the access tokens and the OIDC issuer
	// identifier: the embedded default's public origin, where the gateway
	// serves the discovery document (Fallback to this service's mux).
	DefaultIssuer = "http://127.0.0.1:8080"
	// DefaultAudience is the aud of the access tokens: the tokenrelay API
	// behind the gateway (gateway.DefaultAudience has the same value).
	DefaultAudience = "tokenrelay-api"
	// DefaultClientID is the client_id of the access tokens: the web
	// checkout and the SDKs log in as one public client.
	DefaultClientID = "tokenrelay-web"
)

// Paths served by Register, relative to the issuer's path.
const (
	// DiscoveryPath serves the OpenID Connect discovery document.
	DiscoveryPath = "/.well-known/openid-configuration"
	// JWKSPath serves the access-token keys (keys.WellKnownPath).
	JWKSPath = keys.WellKnownPath
)

// Lifetimes and limits, as documented in the package documentation.
const (
	RefreshTokenLifetime = domain.RefreshTokenLifetime
	SessionLifetime      = domain.SessionLifetime
	RetryWindow          = domain.RetryWindow
	MaxFailedLogins      = domain.MaxFailedLogins
	LockoutWindow        = domain.LockoutWindow
)

// User is an account to seed at New.
type User struct {
	// Username is the login name, 1 to 64 characters; stored lower case.
	Username string
	// Password is hashed at seeding and never stored.
	Password string
	// DisplayName defaults to Username.
	DisplayName string
	// Scopes go into every access token of the user ("shop", "admin").
	Scopes []string
}

// Demo passwords of DemoUsers. They are public: never seed them outside a
// demo.
const (
	DemoShopperPassword = "shopper-demo"
	DemoAdminPassword   = "admin-demo"
)

// DemoUsers returns the demo accounts: "shopper" (scope "shop", password
// DemoShopperPassword) and "admin" (scopes "shop admin", password
// DemoAdminPassword).
func DemoUsers() []User {
	return []User{
		{Username: "shopper", Password: DemoShopperPassword, DisplayName: "Demo Shopper", Scopes: []string{"shop"}},
		{Username: "admin", Password: DemoAdminPassword, DisplayName: "Demo Admin", Scopes: []string{"shop", authn.AdminScope}},
	}
}

// Config configures the service. DB, Vault, Logger, Keys, Gateway and
// TrustDomain are required.
type Config struct {
	// DB is the service's database (SQLite or PostgreSQL); New migrates it.
	DB *sqldb.DB
	// Vault seals the results kept for the 60-second retry window.
	Vault *vault.Keyring
	// Logger receives the service's logs; wrap its handler with
	// authn.NewLogHandler so lines carry the txn.
	Logger *slog.Logger
	// Keys signs the access tokens; Register serves its JWKS.
	Keys *keys.Ring
	// Issuer is the iss of the access tokens and the OIDC issuer
	// identifier, an http(s) URL without query or fragment; the discovery
	// document is served at its path plus DiscoveryPath. Default
	// DefaultIssuer.
	Issuer string
	// Audience is the aud of the access tokens. Default DefaultAudience.
	Audience string
	// ClientID is the client_id of the access tokens. Default
	// DefaultClientID.
	ClientID string
	// AccessTokenLifetime is at most, and by default, 15 minutes.
	AccessTokenLifetime time.Duration
	// Gateway issues the transaction tokens every call must carry, for the
	// audience TrustDomain. Its Loaded, if set (keys fetched by URL), is a
	// readiness check.
	Gateway     capability.Peer
	TrustDomain string
	// Users are created at New when no user has their name (DemoUsers for
	// the demo). Existing users are left as they are.
	Users []User

	hashParams *domain.HashParams // tests: cheaper argon2id
	now        func() time.Time   // tests: a fake clock
}

// Service is a running Identity service.
type Service struct {
	cfg      Config
	server   *ports.Server
	verifier *token.Verifier
	path     string // the issuer URL's path, "" at the origin's root
	disc     ports.Discovery
	store    *adapters.Store
}

// ErrConfig reports an incomplete or invalid Config.
var ErrConfig = errors.New("identity: invalid Config")

// New builds the service: migrates the store, seeds cfg.Users and wires the
// use cases.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Vault == nil || cfg.Logger == nil || cfg.Keys == nil ||
		cfg.Gateway.Issuer == "" || cfg.Gateway.Keys == nil || cfg.TrustDomain == "" {
		return nil, errors.Join(ErrConfig, errors.New("DB, Vault, Logger, Keys, Gateway and TrustDomain are required"))
	}
	cfg.Issuer = orDefault(cfg.Issuer, DefaultIssuer)
	cfg.Audience = orDefault(cfg.Audience, DefaultAudience)
	cfg.ClientID = orDefault(cfg.ClientID, DefaultClientID)
	if cfg.AccessTokenLifetime <= 0 || cfg.AccessTokenLifetime > token.Access.MaxLifetime() {
		cfg.AccessTokenLifetime = token.Access.MaxLifetime()
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.Join(ErrConfig, errors.New("Issuer must be an http(s) URL without query or fragment"))
	}
	v, err := token.NewVerifier(token.WithVerifiedCache(1<<12),
		token.Trust(cfg.Gateway.Issuer, cfg.Gateway.Keys, token.Accept(token.Transaction, cfg.TrustDomain)))
	if err != nil {
		return nil, err
	}
	store, err := adapters.NewStore(ctx, cfg.DB)
	if err != nil {
		v.Close()
		return nil, err
	}
	var clockOpts []token.Option
	if cfg.now != nil {
		clockOpts = append(clockOpts, token.WithClock(cfg.now))
	}
	issuer, err := token.NewIssuer(cfg.Issuer, cfg.Keys, clockOpts...)
	if err != nil {
		v.Close()
		return nil, err
	}
	params := domain.DefaultHashParams
	if cfg.hashParams != nil {
		params = *cfg.hashParams
	}
	a := app.New(store, app.Tokens{Issuer: issuer, Audience: cfg.Audience, ClientID: cfg.ClientID, Lifetime: cfg.AccessTokenLifetime},
		capability.VaultSealer{Keyring: cfg.Vault}, params, cfg.Logger, cfg.now)
	seed := make([]app.NewUser, len(cfg.Users))
	for i, u := range cfg.Users {
		seed[i] = app.NewUser{Username: u.Username, Password: u.Password, DisplayName: u.DisplayName, Scopes: u.Scopes}
	}
	if err := a.Seed(ctx, seed); err != nil {
		v.Close()
		return nil, err
	}
	base := strings.TrimSuffix(cfg.Issuer, "/")
	s := &Service{
		cfg: cfg, server: ports.NewServer(a, cfg.Logger), verifier: v, store: store,
		path: strings.TrimSuffix(u.Path, "/"),
		disc: ports.Discovery{
			Issuer:                            cfg.Issuer,
			JWKSURI:                           base + JWKSPath,
			TokenEndpoint:                     base + identityv1connect.IdentityServiceLoginProcedure,
			ResponseTypesSupported:            []string{"token"},
			SubjectTypesSupported:             []string{"public"},
			GrantTypesSupported:               []string{"password", "refresh_token"},
			TokenEndpointAuthMethodsSupported: []string{"none"},
			IDTokenSigningAlgValuesSupported:  []string{keys.EdDSA, keys.ES256},
			ScopesSupported:                   []string{"shop", authn.AdminScope},
			ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"},
		},
	}
	return s, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Register mounts IdentityService on mux behind the authentication
// interceptor (every RPC needs a transaction token; sub "anonymous" is
// fine), followed by opts' interceptors, and serves the discovery document
// and the JWKS under the issuer's path (DiscoveryPath, JWKSPath), and
// health at /healthz: the database, and the gateway's key set loaded once
// when it is fetched by URL (health.GatewayKeys).
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) {
	opts = append([]connect.HandlerOption{connect.WithInterceptors(authn.NewServerInterceptor(s.verifier))}, opts...)
	mux.Handle(identityv1connect.NewIdentityServiceHandler(s.server, opts...))
	mux.Handle(s.path+DiscoveryPath, s.Discovery())
	mux.Handle(s.path+JWKSPath, s.JWKS())
	checks := map[string]health.Check{"database": s.cfg.DB.SQL().PingContext}
	if s.cfg.Gateway.Loaded != nil {
		checks[health.GatewayKeys] = s.cfg.Gateway.Loaded
	}
	mux.Handle("GET "+health.Path, health.Handler(checks))
}

// Issuer returns the iss of the access tokens.
func (s *Service) Issuer() string { return s.cfg.Issuer }

// Audience returns the aud of the access tokens.
func (s *Service) Audience() string { return s.cfg.Audience }

// Keys returns the access-token key source, for a gateway in the same
// process.
func (s *Service) Keys() keys.Source { return s.cfg.Keys }

// Discovery serves the OpenID Connect discovery document: issuer, jwks_uri
// (issuer + JWKSPath), the Login procedure as token_endpoint, and the
// algorithms, scopes and claims of the access tokens.
func (s *Service) Discovery() http.Handler { return ports.DiscoveryHandler(s.disc) }

// JWKS serves the access-token keys.
func (s *Service) JWKS() http.Handler { return s.cfg.Keys.Handler() }

// Close releases the verifier's caches.
func (s *Service) Close() { s.verifier.Close() }

// Purge deletes the sessions that ended (expired or revoked) more than
// retention before now, with their refresh tokens, and the login-failure
// windows older than that (see the package documentation); a retention of
// 0 keeps them. It returns the rows deleted by table, also when it fails
// part way. The purge task of the process runs it every -purge-every;
// replicas may run it at once.
func (s *Service) Purge(ctx context.Context, now time.Time, retention time.Duration) (map[string]int64, error) {
	if retention <= 0 {
		return nil, nil
	}
	p, err := s.store.Purge(ctx, now.Add(-retention))
	return map[string]int64{"sessions": p.Sessions, "refresh_tokens": p.RefreshTokens, "login_failures": p.LoginFailures}, err
}
