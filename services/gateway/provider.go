package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// ErrNotReady reports an OpenID Connect provider whose discovery document
// has not been read yet: its tokens cannot be verified (keys.ErrUnavailable,
// answered Unavailable) and Ready fails, until Run reads it.
var ErrNotReady = errors.New("gateway: OIDC provider not discovered yet")

// provider is an OpenID Connect provider found by discovery: the key
// source of its issuer, usable once its discovery document has been read.
// Its jwks_uri is followed when the document changes it. It is safe for
// concurrent use.
type provider struct {
	issuer string
	cache  *jwks.Cache

	mu       sync.Mutex
	src      keys.Source // nil until the first discovery
	uri      string      // jwks_uri of the last discovery
	err      error       // why the last discovery failed; nil after a success
	failures int         // consecutive failed discoveries
	next     time.Time   // when Run reads the document again
}

// Key implements keys.Source: keys.ErrUnavailable until the provider has
// been discovered.
func (p *provider) Key(ctx context.Context, kid string) (*keys.PublicKey, error) {
	p.mu.Lock()
	src := p.src
	p.mu.Unlock()
	if src == nil {
		return nil, fmt.Errorf("%w: %w: %s", keys.ErrUnavailable, ErrNotReady, p.issuer)
	}
	return src.Key(ctx, kid)
}

// ready reports nil once the provider has been discovered.
func (p *provider) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.src != nil {
		return nil
	}
	if p.err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotReady, p.issuer, p.err)
	}
	return fmt.Errorf("%w: %s", ErrNotReady, p.issuer)
}

// discovery reads the discovery documents of the providers: once at New,
// then from Run, again every refresh after a success and with exponential
// backoff after a failure.
type discovery struct {
	providers []*provider
	refresh   time.Duration
	retry     time.Duration
	now       func() time.Time
	get       func(ctx context.Context, issuer string) (string, error)
	log       *slog.Logger
}

// discover reads p's discovery document and follows its jwks_uri. A
// failure keeps the keys already known (a provider that is down keeps
// being trusted with its last keys, as jwks.Cache does) and schedules a
// retry.
func (d *discovery) discover(ctx context.Context, p *provider) {
	uri, err := d.get(ctx, p.issuer)
	if err == nil {
		err = p.follow(ctx, uri)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.err = err
		p.failures++
		wait := min(d.retry<<min(p.failures-1, 20), d.refresh)
		p.next = d.now().Add(wait + rand.N(wait/10+1))
		d.log.WarnContext(ctx, "OIDC discovery failed; retrying", "issuer", p.issuer, "failures", p.failures, "retry_in", wait.String(), "err", err)
		return
	}
	if p.failures > 0 || p.err != nil {
		d.log.InfoContext(ctx, "OIDC provider discovered", "issuer", p.issuer, "after_failures", p.failures)
	}
	p.err, p.failures = nil, 0
	p.next = d.now().Add(d.refresh)
}

// follow makes uri the provider's JWKS URL: the first time, it adds the
// issuer to the cache; later, when the document names another jwks_uri,
// it moves the issuer there and fetches the new set at once.
func (p *provider) follow(ctx context.Context, uri string) error {
	p.mu.Lock()
	src, old := p.src, p.uri
	p.mu.Unlock()
	switch {
	case src == nil:
		s, err := p.cache.Add(p.issuer, uri)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.src, p.uri = s, uri
		p.mu.Unlock()
	case uri != old:
		if err := p.cache.SetURLs(p.issuer, uri); err != nil {
			return err
		}
		p.mu.Lock()
		p.uri = uri
		p.mu.Unlock()
		// A failure is logged by the cache, which keeps the last good keys
		// and fetches again on the next unknown kid.
		_ = p.cache.Refresh(ctx, p.issuer)
	}
	return nil
}

// run reads each provider's document when due until ctx is done.
func (d *discovery) run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		now := d.now()
		next := now.Add(d.refresh)
		var wg sync.WaitGroup
		for _, p := range d.providers {
			p.mu.Lock()
			due := !now.Before(p.next)
			p.mu.Unlock()
			if due {
				wg.Go(func() { d.discover(ctx, p) })
			}
		}
		wg.Wait()
		for _, p := range d.providers {
			p.mu.Lock()
			next = minTime(next, p.next)
			p.mu.Unlock()
		}
		timer.Reset(max(next.Sub(d.now()), 0))
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
