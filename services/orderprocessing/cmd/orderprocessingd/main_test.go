package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadRoutesJWKSList (issue 14, item 5): a route's "jwks" is a URL, a
// comma-separated list, or a JSON list of URLs of its issuer's set.
func TestReadRoutesJWKSList(t *testing.T) {
	t.Parallel()
	const (
		a = "https://coupons-1.internal/.well-known/jwks.json"
		b = "https://coupons-2.internal/.well-known/jwks.json"
	)
	route := func(jwks string) string {
		return `{"routes": [{"capability": "coupons:redeem", "issuer": "coupons", "stage": 1, "endpoint": "https://coupons.internal", "jwks": ` + jwks + `}]}`
	}
	for _, tc := range []struct {
		name, jwks, want, wantErr string
	}{
		{"one URL", `"` + a + `"`, a, ""},
		{"comma-separated", `"` + a + `,` + b + `"`, a + "," + b, ""},
		{"list", `["` + a + `", "` + b + `"]`, a + "," + b, ""},
		{"list of one", `["` + a + `"]`, a, ""},
		{"list of numbers", `[1, 2]`, "", "want a URL or a list of URLs"},
		{"URL with a comma in a list", `["` + a + `?x=1,2"]`, "", "comma"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "routes.json")
			if err := os.WriteFile(path, []byte(route(tc.jwks)), 0o600); err != nil {
				t.Fatal(err)
			}
			routes, err := readRoutes(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != 1 || routes[0].JWKS != tc.want || routes[0].Issuer != "coupons" || routes[0].Endpoint != "https://coupons.internal" {
				t.Fatalf("routes = %+v, want one with jwks %q", routes, tc.want)
			}
		})
	}
	// A table with a list is still validated strictly.
	path := filepath.Join(t.TempDir(), "routes.json")
	body := strings.Replace(route(`["`+a+`"]`), `{"routes"`, `{"extra": 1, "routes"`, 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRoutes(path); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("unknown member: err = %v, want one naming it", err)
	}
}
