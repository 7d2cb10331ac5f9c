package process_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/process"
)

// TestPeersURLList (issue 14, item 5): an issuer's keys may be at several
// URLs (replicas sharing a ring), given as a comma-separated list as a flag
// or variable gives it; one replica down does not make the issuer's tokens
// unverifiable.
func TestPeersURLList(t *testing.T) {
	t.Parallel()
	ring, err := keys.NewRing()
	if err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "replica stopping", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	up := httptest.NewServer(ring.Handler())
	t.Cleanup(up.Close)

	peers, err := process.NewPeers(slog.New(slog.DiscardHandler), process.JWKSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peers.Close)
	src, err := peers.Add("order-processing", down.URL+keys.WellKnownPath+", "+up.URL+keys.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ring.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Key(context.Background(), k.KID()); err != nil {
		t.Fatalf("first replica down, second up: %v", err)
	}
}

func TestSplitURLs(t *testing.T) {
	t.Parallel()
	got := process.SplitURLs(" https://a/jwks.json, ,https://b/jwks.json,")
	if want := []string{"https://a/jwks.json", "https://b/jwks.json"}; !slices.Equal(got, want) {
		t.Fatalf("SplitURLs = %q, want %q", got, want)
	}
}

// TestJWKSAllowInsecureHTTP (issue 14, item 6): plain HTTP to a host other
// than loopback needs -jwks-allow-insecure-http (or its variable), which
// is logged as a warning.
func TestJWKSAllowInsecureHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		allow     bool
	}{
		{"default", "", nil, false},
		{"variable", "true", nil, true},
		{"flag", "", []string{"-jwks-allow-insecure-http"}, true},
		{"flag wins", "true", []string{"-jwks-allow-insecure-http=false"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(process.EnvJWKSAllowInsecureHTTP, tc.env)
			var g process.GatewayTrust
			fs := flag.NewFlagSet("couponsd", flag.ContinueOnError)
			g.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if g.AllowInsecureHTTP != tc.allow {
				t.Fatalf("AllowInsecureHTTP = %v, want %v", g.AllowInsecureHTTP, tc.allow)
			}
			var logs bytes.Buffer
			g.JWKS = "http://10.0.0.8:8080/.well-known/jwks.json"
			peers, _, err := g.Peers(slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.allow {
				if err != nil {
					t.Fatal(err)
				}
				peers.Close()
				if !strings.Contains(logs.String(), "INSECURE") {
					t.Fatalf("no warning logged:\n%s", logs.String())
				}
				return
			}
			if !errors.Is(err, jwks.ErrConfig) || !strings.Contains(err.Error(), "-gateway-jwks") {
				t.Fatalf("plain HTTP to 10.0.0.8: err = %v, want jwks.ErrConfig naming -gateway-jwks", err)
			}
			if logs.Len() != 0 {
				t.Fatalf("logged without the option:\n%s", logs.String())
			}
		})
	}
}

// TestExportJWKS: refused JWKS answers are exported beside the fetches,
// summed over the process's caches.
func TestExportJWKS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)
	peers, err := process.NewPeers(slog.New(slog.DiscardHandler), process.JWKSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peers.Close)
	src, err := peers.Add("coupons", srv.URL+keys.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Key(context.Background(), "kid"); !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("empty set: err = %v, want keys.ErrUnavailable", err)
	}
	// A second cache that fetched nothing adds nothing.
	other, err := process.NewPeers(slog.New(slog.DiscardHandler), process.JWKSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	m := metrics.New()
	process.ExportJWKS(m, peers, other)
	rec := httptest.NewRecorder()
	m.Mux().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		process.JWKSRefusedTotal + " 1",
		`tokenrelay_jwks_fetches_total{result="failed"} 1`,
		`tokenrelay_jwks_fetches_total{result="ok"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
