package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// trust builds the access-token verifier of cfg.Issuers (defaults applied)
// and records how each issuer's tokens become transaction tokens. The
// discovery documents of the OIDC providers are read once here; one that
// cannot be read leaves its provider not ready (Ready, ErrNotReady) and
// Run tries again, so that the gateway starts while a provider is down.
func (g *Gateway) trust(ctx context.Context, cfg Config) error {
	opts := []token.Option{token.WithVerifiedCache(1 << 14)}
	for _, is := range cfg.Issuers {
		src := is.Keys
		if src == nil {
			if g.cache == nil {
				var err error
				if g.cache, err = jwks.New(jwks.WithHTTPClient(cfg.HTTPClient), jwks.WithLogger(cfg.Logger)); err != nil {
					return err
				}
			}
			p := &provider{issuer: is.Issuer, cache: g.cache}
			g.discovery.providers = append(g.discovery.providers, p)
			src = p
		}
		policy := []token.PolicyOption{token.Accept(token.Access, is.Audience), token.Algorithms(is.Algorithms...)}
		grant := issuerGrant{scopes: is.Scopes}
		if is.Profile != nil {
			policy = append(policy, token.Profile(is.Profile.AccessProfile))
			grant.foreign, grant.scopeMap = true, is.Profile.ScopeMap
		}
		opts = append(opts, token.Trust(is.Issuer, src, policy...))
		g.grants[is.Issuer] = grant
	}
	var err error
	if g.verifier, err = token.NewVerifier(opts...); err != nil {
		return err
	}
	// Concurrently: a provider that hangs delays the start by one
	// discovery timeout, not one per provider.
	var wg sync.WaitGroup
	for _, p := range g.discovery.providers {
		wg.Go(func() { g.discovery.discover(ctx, p) })
	}
	wg.Wait()
	return nil
}

// Ready reports whether the gateway can verify every issuer's tokens: nil
// once each OIDC provider's discovery document has been read, else an
// error wrapping ErrNotReady that names the providers still unknown.
// gatewayd serves it at /readyz.
func (g *Gateway) Ready(context.Context) error {
	var errs []error
	for _, p := range g.discovery.providers {
		if err := p.ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// issuerGrant is what an issuer's access tokens may put in a transaction
// token.
type issuerGrant struct {
	// foreign: a provider outside tokenrelay; its subjects are qualified
	// by its issuer, and it grants admin only through scopeMap.
	foreign  bool
	scopeMap map[string][]string
	scopes   []string // when not empty, the only scopes it may grant
}

// admit authenticates a request for procedure and mints its transaction
// token: the token and its claims, or the refusal to answer with (logged
// here, with the reason of a refused token but without the token).
func (g *Gateway) admit(r *http.Request, procedure string) (string, token.TransactionClaims, error) {
	claims, err := g.authenticate(r, procedure)
	if err != nil {
		g.log.InfoContext(r.Context(), "request refused", "procedure", procedure, "code", connect.CodeOf(err).String(),
			"reason", token.Reason(err), "err", err)
		return "", token.TransactionClaims{}, err
	}
	raw, txn, err := token.Issue(r.Context(), g.issuer, token.Transaction, claims)
	if err != nil {
		g.log.ErrorContext(r.Context(), "mint transaction token", "procedure", procedure, "err", err)
		return "", token.TransactionClaims{}, connect.NewError(connect.CodeInternal, errInternal)
	}
	return raw, txn, nil
}

// authenticate verifies the access token (unless procedure is anonymous)
// and returns the claims of the transaction token to mint.
func (g *Gateway) authenticate(r *http.Request, procedure string) (token.TransactionClaims, error) {
	sub, scope := AnonymousSubject, ""
	tctx := map[string]string{"tenant": g.tenant}
	if !g.anonymous[procedure] {
		raw, err := g.credential(r)
		if err != nil {
			return token.TransactionClaims{}, err
		}
		access, err := token.Verify(r.Context(), g.verifier, token.Access, raw)
		if err != nil {
			return token.TransactionClaims{}, g.refuseToken(r, err)
		}
		var principal string
		sub, principal = g.subject(access)
		scope = g.grant(access.Issuer, access.Scope)
		tctx[ContextIssuer], tctx[ContextPrincipal] = access.Issuer, principal
	}
	if g.admin[procedure] && !slices.Contains(strings.Fields(scope), authn.AdminScope) {
		return token.TransactionClaims{}, &refusal{err: connect.NewError(connect.CodePermissionDenied, errAdminOnly), header: g.challenges.insufficientScope}
	}
	c := token.TransactionClaims{
		Registered:         token.Registered{Subject: sub, Audience: []string{g.trustDomain}},
		Scope:              scope,
		Context:            tctx,
		RequestingWorkload: g.name,
	}
	if g.lifetime != token.Transaction.DefaultLifetime() {
		c.ExpiresAt = time.Now().Add(g.lifetime)
	}
	return c, nil
}

// subject returns the sub of the transaction token for a verified access
// token, and whether it names a user or a client (PrincipalUser,
// PrincipalClient). The identity service's users are its subjects as they
// are; a foreign provider's are qualified by its issuer (ForeignSubject),
// and a token a client obtained for itself (client credentials: no sub, or
// sub equal to client_id, RFC 9068 section 2.2) names the client
// (ForeignClient), never a user.
func (g *Gateway) subject(access token.AccessClaims) (sub, principal string) {
	if !g.grants[access.Issuer].foreign {
		return access.Subject, PrincipalUser
	}
	if access.Subject == "" || access.Subject == access.ClientID {
		return ForeignClient(access.Issuer, access.ClientID), PrincipalClient
	}
	return ForeignSubject(access.Issuer, access.Subject), PrincipalUser
}

// Keys of the transaction token's tctx that the gateway sets for an
// authenticated request, besides "tenant".
const (
	// ContextIssuer is the iss of the access token: which issuer
	// authenticated the subject.
	ContextIssuer = "iss"
	// ContextPrincipal is PrincipalUser or PrincipalClient.
	ContextPrincipal = "principal"
	// PrincipalUser: sub is an end user.
	PrincipalUser = "user"
	// PrincipalClient: sub is an OAuth client acting for itself (a
	// client-credentials token), no end user.
	PrincipalClient = "client"
)

// subjectSeparator joins a foreign issuer and its subject. An issuer URL
// has no fragment, so the first "#" ends it.
const subjectSeparator = "#"

// clientPrefix starts the subject of a foreign client.
const clientPrefix = "client:"

// ForeignSubject is the sub of the transaction tokens of user sub of the
// foreign provider iss: "<iss>#<sub>", such as
// "https://login.example.com/realms/shop#f1b7c2d4-...". The services key
// balances, payment methods and orders by sub, so two providers' users, or
// a provider's user and a local one ("usr_..."), never share them: (iss,
// sub) is the identity (OpenID Connect Core 1.0 section 2).
func ForeignSubject(iss, sub string) string { return iss + subjectSeparator + sub }

// ForeignClient is the sub of the transaction tokens of a client of the
// foreign provider iss acting for itself: "client:<iss>#<client_id>",
// which no user's sub can be.
func ForeignClient(iss, clientID string) string {
	return clientPrefix + iss + subjectSeparator + clientID
}

// credential returns the access token of r: the b64token of its one
// "Authorization: Bearer" header (RFC 6750 section 2.1). It refuses, with
// the challenge to answer with, a request without a Bearer credential (no
// error attribute: the client may not know a token is needed) and one
// with more than one credential (invalid_request): two Authorization
// headers, two credentials in one (a comma, a space in the token), or a
// Bearer header beside an access_token query parameter (the gateway reads
// tokens from the header only; RFC 6750 section 2 allows one method per
// request). A client-supplied value never picks the token: the first
// header does not win.
func (g *Gateway) credential(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", &refusal{err: connect.NewError(connect.CodeUnauthenticated, errMissingToken), header: g.challenges.missing}
	case len(values) > 1 || strings.Contains(values[0], ","):
		return "", g.invalidRequest()
	}
	scheme, tok, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &refusal{err: connect.NewError(connect.CodeUnauthenticated, errMissingToken), header: g.challenges.missing}
	}
	tok = strings.TrimLeft(tok, " ")
	if !b64token(tok) || (r.URL.RawQuery != "" && r.URL.Query().Has("access_token")) {
		return "", g.invalidRequest()
	}
	return tok, nil
}

func (g *Gateway) invalidRequest() error {
	return &refusal{err: connect.NewError(connect.CodeUnauthenticated, errInvalidRequest), header: g.challenges.invalidRequest, status: http.StatusBadRequest}
}

// refuseToken maps a refused access token to the answer: for a token
// defect Unauthenticated, one text whatever the defect, the invalid_token
// challenge, and one failure taken from the client's budget; for anything
// else (the issuer's keys unavailable, the request canceled) what
// rpcerr.Token maps it to, spending nothing.
func (g *Gateway) refuseToken(r *http.Request, err error) error {
	cerr := rpcerr.Token(fmt.Errorf("access token: %w", err))
	if cerr.Code() != connect.CodeUnauthenticated {
		return cerr
	}
	if g.budget != nil {
		key := clientKey(r.RemoteAddr)
		if _, spent := g.budget.Fail(key, g.now()); spent {
			g.log.WarnContext(r.Context(), "client spent its budget of failed authentications", "client", key.String())
		}
	}
	return &refusal{err: connect.NewError(connect.CodeUnauthenticated, invalidToken{defect: cerr.Unwrap()}), header: g.challenges.invalidToken}
}

// withinBudget refuses a request for procedure from a client that has
// spent its budget of failed authentications, before its body is read or
// its token looked at; anonymous procedures need no token and pass. The
// refusal closes the connection (Connection: close; over HTTP/2 net/http
// sends GOAWAY for it instead), so that the client must connect again,
// and AcceptConn closes its new connections while the budget stays spent:
// a client flooding over a kept-alive connection would otherwise still
// cost an HTTP request's parsing and answer each time.
func (g *Gateway) withinBudget(r *http.Request, procedure string) error {
	if g.budget == nil || g.anonymous[procedure] {
		return nil
	}
	wait, spent := g.budget.Spent(clientKey(r.RemoteAddr), g.now())
	if !spent {
		return nil
	}
	return &refusal{
		err: connect.NewError(connect.CodeResourceExhausted, errBudgetSpent),
		header: http.Header{
			"Retry-After": {strconv.Itoa(int(wait / time.Second))},
			"Connection":  {"close"},
		},
	}
}

// AcceptConn reports whether the gateway serves a new connection from
// remote: false while remote's client (its address; an IPv6 client's /64)
// has spent its budget of failed authentications, so that the connection
// is closed as it is accepted, before any HTTP is read, for every
// procedure, the anonymous ones included; always true without a budget.
// Once the budget has a failure again (Config.AuthFailureRefill) the
// client is served again. It allocates nothing for a TCP address. Listen
// passes it to server.Listen; a listener made otherwise should too.
func (g *Gateway) AcceptConn(remote net.Addr) bool {
	if g.budget == nil {
		return true
	}
	_, spent := g.budget.Spent(addrKey(remote), g.now())
	return !spent
}

// grant returns the tokenrelay scopes that an access token of issuer with
// scope may have: a foreign provider's scopes mapped by its ScopeMap (or,
// without one, as they are but for admin), then limited to the issuer's
// Scopes when it has some.
func (g *Gateway) grant(issuer, scope string) string {
	gr := g.grants[issuer]
	var out []string
	add := func(s string) {
		if (len(gr.scopes) == 0 || slices.Contains(gr.scopes, s)) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range strings.Fields(scope) {
		switch {
		case !gr.foreign:
			add(s)
		case len(gr.scopeMap) > 0:
			for _, m := range gr.scopeMap[s] {
				add(m)
			}
		case s != authn.AdminScope:
			add(s)
		}
	}
	return strings.Join(out, " ")
}

// challenges are the WWW-Authenticate headers of the refusals (RFC 6750
// section 3), built once: they name the realm (Config.TrustDomain) and
// describe the error in fixed text.
type challenges struct {
	missing, invalidRequest, invalidToken, insufficientScope http.Header
}

func newChallenges(realm string) challenges {
	h := func(attrs ...string) http.Header {
		v := "Bearer realm=" + quote(realm)
		for i := 0; i < len(attrs); i += 2 {
			v += ", " + attrs[i] + "=" + quote(attrs[i+1])
		}
		return http.Header{"Www-Authenticate": {v}}
	}
	return challenges{
		missing:        h(),
		invalidRequest: h("error", "invalid_request", "error_description", errInvalidRequest.Error()),
		invalidToken:   h("error", "invalid_token", "error_description", invalidToken{}.Error()),
		insufficientScope: h("error", "insufficient_scope", "error_description", errAdminOnly.Error(),
			"scope", authn.AdminScope),
	}
}

// quote returns s as an HTTP quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// b64token reports whether s has the syntax of an RFC 6750 bearer token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func b64token(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}
