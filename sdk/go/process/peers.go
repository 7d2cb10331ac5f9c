package process

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
)

// JWKSRefusedTotal counts the JWKS answers of trusted issuers refused for
// their content (too large, malformed, or without a usable key), a subset
// of tokenrelay_jwks_fetches_total{result="failed"}; see ExportJWKS.
const JWKSRefusedTotal = "tokenrelay_jwks_refused_total"

// EnvJWKSAllowInsecureHTTP is the variable of -jwks-allow-insecure-http.
const EnvJWKSAllowInsecureHTTP = "TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP"

// JWKSConfig configures how a process fetches its peers' keys.
type JWKSConfig struct {
	// AllowInsecureHTTP accepts plain http:// JWKS URLs to any host
	// (-jwks-allow-insecure-http, TOKENRELAY_JWKS_ALLOW_INSECURE_HTTP,
	// default false: https, or http to loopback only). Anyone on the path
	// of a plain HTTP fetch can replace the keys and forge the issuer's
	// tokens: use it only on a private network as trusted as the issuers.
	AllowInsecureHTTP bool
}

// Flags registers -jwks-allow-insecure-http.
func (c *JWKSConfig) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.AllowInsecureHTTP, "jwks-allow-insecure-http", EnvBool(EnvJWKSAllowInsecureHTTP, false),
		"INSECURE: fetch JWKS over plain http:// from hosts other than loopback, on a trusted private network only (env "+EnvJWKSAllowInsecureHTTP+")")
}

// Peers is a JWKS cache for the token issuers a process trusts by URL.
type Peers struct {
	cache *jwks.Cache
}

// NewPeers returns an empty Peers whose cache logs to log. With
// cfg.AllowInsecureHTTP it logs a warning now, and one for each plain HTTP
// URL added.
func NewPeers(log *slog.Logger, cfg JWKSConfig) (*Peers, error) {
	opts := []jwks.Option{jwks.WithLogger(log)}
	if cfg.AllowInsecureHTTP {
		log.Warn("INSECURE: JWKS may be fetched over plain HTTP from any host (-jwks-allow-insecure-http): anyone on the network path can forge the tokens of such an issuer")
		opts = append(opts, jwks.AllowInsecureHTTP())
	}
	c, err := jwks.New(opts...)
	if err != nil {
		return nil, err
	}
	return &Peers{cache: c}, nil
}

// Add trusts issuer's keys at jwksURLs, a comma-separated list of URLs of
// one key set (replicas sharing a key ring, or a shared endpoint and the
// replicas), as a flag or variable gives it, and returns their source. The
// URLs are tried in turn (jwks.Cache.Add); percent-encode a comma inside a
// URL.
func (p *Peers) Add(issuer, jwksURLs string) (keys.Source, error) {
	urls := SplitURLs(jwksURLs)
	if len(urls) == 0 {
		return nil, fmt.Errorf("process: no JWKS URL for issuer %q", issuer)
	}
	return p.cache.Add(issuer, urls...)
}

// SplitURLs splits a comma-separated list of URLs, dropping spaces and
// empty entries.
func SplitURLs(list string) []string {
	var out []string
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Loaded returns nil once issuer's key set has been fetched at least once,
// and until then fetches it now, bounded by ctx, and returns why it failed
// (jwks.Cache.Loaded): the readiness check of a process that must not
// take requests before it can verify the issuer's tokens.
func (p *Peers) Loaded(ctx context.Context, issuer string) error { return p.cache.Loaded(ctx, issuer) }

// Run refreshes every issuer's keys (jwks.Cache.Run): a server.Task.
func (p *Peers) Run(ctx context.Context) error { return p.cache.Run(ctx) }

// Fetches returns the cache's key-set fetches (jwks.Cache.Fetches), for
// metrics.Registry.JWKSFetches.
func (p *Peers) Fetches() (ok, failed int64) { return p.cache.Fetches() }

// Refused returns the cache's answers refused for their content
// (jwks.Cache.Refused).
func (p *Peers) Refused() int64 { return p.cache.Refused() }

// JWKSCounters is a JWKS cache's counters: a Peers, a jwks.Cache, or a
// gateway.Gateway (its OpenID Connect providers' keys).
type JWKSCounters interface {
	// Fetches returns the key-set fetches that succeeded and failed.
	Fetches() (ok, failed int64)
	// Refused returns the answers refused for their content.
	Refused() int64
}

// ExportJWKS registers with m the counters of every JWKS cache of the
// process, summed: fetches as metrics.JWKSFetchesTotal{result} and
// refused answers as JWKSRefusedTotal. Call it once per registry. Every
// process exports them, with no cache too (zeros): a dashboard or alert
// on them then works on every deployment, and says "none fetched" rather
// than "no data" where keys are in process.
func ExportJWKS(m *metrics.Registry, caches ...JWKSCounters) {
	m.JWKSFetches(func() (ok, failed int64) {
		for _, c := range caches {
			o, f := c.Fetches()
			ok, failed = ok+o, failed+f
		}
		return ok, failed
	})
	m.Prometheus().MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: JWKSRefusedTotal,
		Help: "JWKS answers of trusted issuers refused for their content (too large, malformed, no usable key); also counted as failed fetches.",
	}, func() float64 {
		var n int64
		for _, c := range caches {
			n += c.Refused()
		}
		return float64(n)
	}))
}

// Close releases the cache.
func (p *Peers) Close() { p.cache.Close() }
