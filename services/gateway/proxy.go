package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
)

// routeTable builds the routing table, service name to handler, from
// validated routes: in-process handlers as they are, URLs behind a
// balancer.
func (g *Gateway) routeTable(routes []Route, transport http.RoundTripper) (map[string]http.Handler, error) {
	table := make(map[string]http.Handler, len(routes))
	for _, rt := range routes {
		if rt.Handler != nil {
			table[rt.Service] = rt.Handler
			continue
		}
		h, err := g.balance(append([]string{rt.URL}, rt.URLs...), transport)
		if err != nil {
			return nil, err
		}
		table[rt.Service] = h
	}
	return table, nil
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
	b.g.unavailable(w, r)
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
			g.unavailable(w, r)
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
