package jwks_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/jwks"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// TestRSAKeysKept: the JWKS of an OpenID Connect provider holds RSA keys,
// often without "alg" and with x5c and x5t beside them (Entra ID); the
// cache keeps them as RS256 verification keys instead of ignoring them.
func TestRSAKeysKept(t *testing.T) {
	t.Parallel()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := base64.RawURLEncoding.EncodeToString
	set := `{"keys":[{"kty":"RSA","use":"sig","kid":"entra-1","x5t":"entra-1","n":"` + b(priv.N.Bytes()) +
		`","e":"AQAB","x5c":["MIIDBTCCAe2gAwIBAgIQ"],"issuer":"https://login.microsoftonline.com/t/v2.0"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(set))
	}))
	t.Cleanup(srv.Close)
	clk := newClock()
	c, err := jwks.New(jwks.WithClock(clk.Now), jwks.WithHTTPClient(srv.Client()), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	src, err := c.Add("https://login.microsoftonline.com/t/v2.0", srv.URL+keys.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := src.Key(context.Background(), "entra-1")
	if err != nil {
		t.Fatalf("Key(entra-1): %v", err)
	}
	if k.Algorithm() != keys.RS256 {
		t.Fatalf("alg %s, want RS256", k.Algorithm())
	}
}
