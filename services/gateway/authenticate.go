package gateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// trust builds the access-token verifier of cfg.Issuers (defaults applied)
// and records their scope limits. On error the caller closes g: the JWKS
// cache may already hold a provider.
func (g *Gateway) trust(ctx context.Context, cfg Config) error {
	opts := []token.Option{token.WithVerifiedCache(1 << 14)}
	for _, is := range cfg.Issuers {
		src, err := g.keysOf(ctx, is, cfg)
		if err != nil {
			return err
		}
		opts = append(opts, token.Trust(is.Issuer, src, token.Accept(token.Access, is.Audience), token.Algorithms(is.Algorithms...)))
		if len(is.Scopes) > 0 {
			g.scopes[is.Issuer] = is.Scopes
		}
	}
	var err error
	g.verifier, err = token.NewVerifier(opts...)
	return err
}

// keysOf returns an issuer's key source: its Keys in process, or else the
// keys at the jwks_uri of its discovery document, through the gateway's
// jwks.Cache (made for the first such issuer).
func (g *Gateway) keysOf(ctx context.Context, is Issuer, cfg Config) (keys.Source, error) {
	if is.Keys != nil {
		return is.Keys, nil
	}
	uri, err := discover(ctx, cfg.HTTPClient, is.Issuer)
	if err != nil {
		return nil, err
	}
	if g.cache == nil {
		if g.cache, err = jwks.New(jwks.WithHTTPClient(cfg.HTTPClient), jwks.WithLogger(cfg.Logger)); err != nil {
			return nil, err
		}
	}
	return g.cache.Add(is.Issuer, uri)
}

// admit authenticates a request for procedure and mints its transaction
// token: the token and its claims, or the refusal to answer with (logged
// here, without the token).
func (g *Gateway) admit(r *http.Request, procedure string) (string, token.TransactionClaims, error) {
	claims, err := g.authenticate(r, procedure)
	if err != nil {
		g.log.InfoContext(r.Context(), "request refused", "procedure", procedure, "code", connect.CodeOf(err).String(), "err", err)
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
	if !g.anonymous[procedure] {
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			return token.TransactionClaims{}, withChallenge(connect.NewError(connect.CodeUnauthenticated, errMissingToken))
		}
		access, err := token.Verify(r.Context(), g.verifier, token.Access, raw)
		if err != nil {
			cerr := rpcerr.Token(fmt.Errorf("access token: %w", err))
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

// withChallenge adds the RFC 6750 challenge to a refusal for a missing or
// invalid access token.
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
