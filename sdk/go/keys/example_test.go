package keys_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

// An issuer keeps its ring in its data directory and serves the public keys
// at /.well-known/jwks.json.
func ExampleRing_Handler() {
	dir, err := os.MkdirTemp("", "ring")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ring, err := keys.OpenRing(filepath.Join(dir, "coupons"))
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET "+keys.WellKnownPath, ring.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + keys.WellKnownPath)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	fmt.Println(len(ring.PublicKeys()), "keys: current and next")

	// Rotation promotes the next key and keeps the old one published.
	if err := ring.Rotate(); err != nil {
		panic(err)
	}
	fmt.Println(len(ring.PublicKeys()), "keys: current, next and retired")
	// Output:
	// 200 application/jwk-set+json public, max-age=300
	// 2 keys: current and next
	// 3 keys: current, next and retired
}
