package gateway_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/services/gateway"
)

// TestParseIssuers: the -issuers-file format, strictly.
func TestParseIssuers(t *testing.T) {
	t.Parallel()
	got, err := gateway.ParseIssuers([]byte(`{"issuers":[{
		"issuer": "https://kc.example.com/realms/shop", "audience": "shop-api", "algorithms": ["RS256"],
		"types": ["at+jwt", "JWT"], "max_lifetime": "1h", "leeway": "30s",
		"scope_claim": ["realm_access", "roles"], "subject_claim": "sub", "client_id_claim": "azp",
		"scope_map": {"shop-admin": ["shop", "admin"]}, "scopes": ["shop", "admin"]
	}, {"issuer": "https://accounts.example.com"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d issuers, want 2", len(got))
	}
	kc := got[0]
	p := kc.Profile
	if kc.Issuer != "https://kc.example.com/realms/shop" || kc.Audience != "shop-api" || !slices.Equal(kc.Algorithms, []string{"RS256"}) ||
		p == nil || !slices.Equal(p.Types, []string{"at+jwt", "JWT"}) || p.MaxLifetime != time.Hour || p.Leeway != 30*time.Second ||
		!slices.Equal(p.ScopeClaim, []string{"realm_access", "roles"}) || p.ClientIDClaim != "azp" ||
		!slices.Equal(p.ScopeMap["shop-admin"], []string{"shop", "admin"}) || !slices.Equal(kc.Scopes, []string{"shop", "admin"}) {
		t.Fatalf("parsed %+v, profile %+v", kc, p)
	}
	if got[1].Profile == nil || got[1].Keys != nil {
		t.Fatal("an entry is a foreign provider, discovered")
	}
	for name, body := range map[string]string{
		"unknown member":      `{"issuers":[{"issuer":"https://a.example","scope":"x"}]}`,
		"no issuer":           `{"issuers":[{"audience":"x"}]}`,
		"duration a number":   `{"issuers":[{"issuer":"https://a.example","leeway":30}]}`,
		"duration unreadable": `{"issuers":[{"issuer":"https://a.example","leeway":"soon"}]}`,
		"trailing data":       `{"issuers":[]} {}`,
		"not JSON":            `issuers: []`,
	} {
		if _, err := gateway.ParseIssuers([]byte(body)); !errors.Is(err, gateway.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// TestForeignConfigRefusals: a foreign provider's configuration is
// checked at New.
func TestForeignConfigRefusals(t *testing.T) {
	t.Parallel()
	for name, is := range map[string][]gateway.Issuer{
		"issuer twice":            {{Issuer: idIssuer, Keys: ring(t)}, {Issuer: idIssuer, Keys: ring(t)}},
		"foreign issuer with a #": {{Issuer: "https://a.example/#x", Keys: ring(t), Profile: &gateway.Profile{}}},
	} {
		cfg := config(ring(t), nil, gateway.Route{Handler: http.NotFoundHandler()})
		cfg.Issuers = is
		if _, err := gateway.New(t.Context(), cfg); !errors.Is(err, gateway.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	cfg := config(ring(t), nil, gateway.Route{Handler: http.NotFoundHandler()})
	cfg.Issuers = []gateway.Issuer{{Issuer: "https://a.example", Keys: ring(t), Algorithms: []string{"HS256"}, Profile: &gateway.Profile{}}}
	if _, err := gateway.New(t.Context(), cfg); err == nil {
		t.Error("HS256 from a foreign provider: accepted")
	}
}

// FuzzParseIssuers: any file is parsed or refused with ErrConfig, never a
// panic, and every parsed entry is a foreign provider with an issuer.
func FuzzParseIssuers(f *testing.F) {
	f.Add([]byte(`{"issuers":[{"issuer":"https://kc.example.com/realms/shop","types":["JWT"],"leeway":"30s","scope_claim":["realm_access","roles"],"scope_map":{"a":["shop"]}}]}`))
	f.Add([]byte(`{"issuers":[]}`))
	f.Add([]byte(`{"issuers":[{"issuer":"x","max_lifetime":"1h","algorithms":["RS256"]}]} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := gateway.ParseIssuers(data)
		if err != nil {
			if !errors.Is(err, gateway.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		for _, is := range got {
			if is.Issuer == "" || is.Profile == nil || is.Keys != nil {
				t.Fatalf("parsed entry %+v", is)
			}
		}
	})
}
