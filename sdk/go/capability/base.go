package capability

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// Base is what every domain's public face holds besides its handlers: the
// verifier of the tokens it trusts, the issuer of its confirmation tokens,
// its trust configuration and its database. Embed it in the face's Service.
type Base struct {
	Verifier *token.Verifier
	Issuer   TokenIssuer
	trust    Trust
	db       *sqldb.DB
}

// ErrIncompleteConfig reports a domain Config without a database.
var ErrIncompleteConfig = errors.New("capability: a domain needs a database")

// NewBase builds the verifier (Trust.Verifier) and the confirmation-token
// issuer of domain name.
func NewBase(name string, trust Trust, db *sqldb.DB) (*Base, error) {
	if db == nil {
		return nil, ErrIncompleteConfig
	}
	v, err := trust.Verifier(name)
	if err != nil {
		return nil, err
	}
	is, err := token.NewIssuer(name, trust.Keys)
	if err != nil {
		v.Close()
		return nil, err
	}
	return &Base{Verifier: v, Issuer: TokenIssuer{Issuer: is}, trust: trust, db: db}, nil
}

// Mount registers the domain's handlers as Trust.Register does, and its
// health at /healthz (a database ping).
func (b *Base) Mount(mux *http.ServeMux, d Domain, errs func(context.Context, error) *connect.Error,
	own func(...connect.HandlerOption) (string, http.Handler), opts ...connect.HandlerOption) {
	b.trust.Register(mux, b.Verifier, d, errs, own, opts...)
	mux.Handle("GET "+health.Path, health.Handler(map[string]health.Check{"database": b.db.SQL().PingContext}))
}

// JWKS serves the domain's public keys (Mount serves them at
// /.well-known/jwks.json).
func (b *Base) JWKS() http.Handler { return b.trust.Keys.Handler() }

// Close releases the verifier's caches.
func (b *Base) Close() { b.Verifier.Close() }
