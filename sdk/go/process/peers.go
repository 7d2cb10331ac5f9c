package process

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// Peers is a JWKS cache for the token issuers a process trusts by URL.
type Peers struct {
	cache *jwks.Cache
}

// NewPeers returns an empty Peers whose cache logs to log.
func NewPeers(log *slog.Logger) (*Peers, error) {
	c, err := jwks.New(jwks.WithLogger(log))
	if err != nil {
		return nil, err
	}
	return &Peers{cache: c}, nil
}

// Add trusts issuer's keys at jwksURL and returns their source.
func (p *Peers) Add(issuer, jwksURL string) (keys.Source, error) {
	if jwksURL == "" {
		return nil, fmt.Errorf("process: no JWKS URL for issuer %q", issuer)
	}
	return p.cache.Add(issuer, jwksURL)
}

// Run refreshes every issuer's keys (jwks.Cache.Run): a server.Task.
func (p *Peers) Run(ctx context.Context) error { return p.cache.Run(ctx) }

// Fetches returns the cache's key-set fetches (jwks.Cache.Fetches), for
// metrics.Registry.JWKSFetches.
func (p *Peers) Fetches() (ok, failed int64) { return p.cache.Fetches() }

// Close releases the cache.
func (p *Peers) Close() { p.cache.Close() }
