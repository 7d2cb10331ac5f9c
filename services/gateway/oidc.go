package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DiscoveryPath is where an OpenID Connect provider serves its discovery
// document, relative to its issuer URL.
const DiscoveryPath = "/.well-known/openid-configuration"

// Bounds of a discovery fetch.
const (
	discoveryTimeout = 10 * time.Second
	discoveryMaxSize = 64 << 10
)

// ErrDiscovery reports an OpenID Connect provider whose discovery document
// cannot be fetched or is not acceptable: not 200, too large, not JSON, an
// issuer other than the configured one (OpenID Connect Discovery 1.0
// section 4.3: a document naming another issuer must not be used), or a
// missing or unusable jwks_uri.
var ErrDiscovery = errors.New("gateway: OIDC discovery failed")

// discover fetches issuer's discovery document and returns its jwks_uri.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	iu, err := url.Parse(issuer)
	if err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" || iu.RawQuery != "" || iu.Fragment != "" {
		return "", fmt.Errorf("%w: issuer %q is not an http(s) URL without query or fragment", ErrDiscovery, issuer)
	}
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+DiscoveryPath, nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDiscovery, err)
	}
	req.Header.Set("Accept", "application/json")
	c := *client
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) > 3 || r.URL.Scheme != iu.Scheme || r.URL.Host != iu.Host {
			return fmt.Errorf("%w: redirect to another origin refused", ErrDiscovery)
		}
		return nil
	}
	res, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrDiscovery, issuer, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: %s: status %d", ErrDiscovery, issuer, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, discoveryMaxSize+1))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrDiscovery, issuer, err)
	}
	if len(body) > discoveryMaxSize {
		return "", fmt.Errorf("%w: %s: document larger than %d bytes", ErrDiscovery, issuer, discoveryMaxSize)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrDiscovery, issuer, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("%w: document of %s names issuer %q", ErrDiscovery, issuer, doc.Issuer)
	}
	ju, err := url.Parse(doc.JWKSURI)
	// Plain http only when the operator configured a plain-http issuer
	// (a private network or loopback); an https issuer's keys come over
	// https.
	if err != nil || ju.Host == "" || (ju.Scheme != "https" && (ju.Scheme != "http" || iu.Scheme != "http")) {
		return "", fmt.Errorf("%w: %s: jwks_uri %q not usable", ErrDiscovery, issuer, doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}
