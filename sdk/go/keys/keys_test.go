package keys_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestSignVerify(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{keys.EdDSA, keys.ES256} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			k, err := keys.GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := k.Sign("a.b")
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) != 64 {
				t.Fatalf("signature is %d bytes, want 64", len(sig))
			}
			if err := k.Public().Verify("a.b", sig); err != nil {
				t.Fatal(err)
			}
			if err := k.Public().Verify("a.c", sig); !errors.Is(err, keys.ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			// The JWK round-trips with the same thumbprint kid.
			got, err := keys.ParseJWK(k.Public().AppendJWK(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got.KID() != k.KID() || got.Thumbprint() != k.KID() || got.Algorithm() != alg {
				t.Fatalf("jwk round trip: kid %q alg %q", got.KID(), got.Algorithm())
			}
		})
	}
	if _, err := keys.GenerateKey("HS256"); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
		t.Fatalf("HS256: err = %v", err)
	}
}

// TestThumbprintRFC7638 checks the kid against RFC 8037 appendix A.3.
func TestThumbprintRFC7638(t *testing.T) {
	t.Parallel()
	k, err := keys.ParseJWK([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.Thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("thumbprint = %s, want %s", got, want)
	}
}

func TestRingRotation(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r, err := keys.NewRing(keys.WithRingClock(clk.Now), keys.WithRetention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, _ := r.SigningKey()
	next := r.PublicKeys()[1]
	if len(r.PublicKeys()) != 2 {
		t.Fatalf("new ring publishes %d keys, want current and next", len(r.PublicKeys()))
	}
	if err := r.Rotate(); err != nil {
		t.Fatal(err)
	}
	cur, _ := r.SigningKey()
	if cur.KID() != next.KID() {
		t.Fatal("rotate did not promote the published next key")
	}
	if _, err := r.Key(ctx, first.KID()); err != nil {
		t.Fatalf("retired key not published: %v", err)
	}
	clk.Add(time.Hour + time.Second)
	if _, err := r.Key(ctx, first.KID()); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("retired key after retention: err = %v, want ErrKeyNotFound", err)
	}
	if strings.Contains(string(r.JWKS()), first.KID()) {
		t.Fatal("pruned key still in the JWKS")
	}
}

func TestOpenRingPersistsAndChecksPermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    error
	}{
		{"fresh directory", func(*testing.T, string) {}, nil},
		{"reopen", func(t *testing.T, dir string) {
			if _, err := keys.OpenRing(dir); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"group-readable directory", func(t *testing.T, dir string) {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o750); err != nil {
				t.Fatal(err)
			}
		}, keys.ErrInsecurePermissions},
		{"world-readable key file", func(t *testing.T, dir string) {
			if _, err := keys.OpenRing(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, keys.RingFile), 0o644); err != nil {
				t.Fatal(err)
			}
		}, keys.ErrInsecurePermissions},
		{"edited kid", func(t *testing.T, dir string) {
			r, err := keys.OpenRing(dir)
			if err != nil {
				t.Fatal(err)
			}
			k, _ := r.SigningKey()
			path := filepath.Join(dir, keys.RingFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(data), k.KID(), "forged", 1)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, keys.ErrMalformedKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "keys")
			tc.prepare(t, dir)
			r, err := keys.OpenRing(dir)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, keys.RingFile): 0o600} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != want {
					t.Fatalf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
				}
			}
			before, _ := r.SigningKey()
			next := r.PublicKeys()[1].KID()
			if err := r.Rotate(); err != nil {
				t.Fatal(err)
			}
			again, err := keys.OpenRing(dir)
			if err != nil {
				t.Fatal(err)
			}
			cur, _ := again.SigningKey()
			if cur.KID() != next {
				t.Fatal("rotation was not persisted")
			}
			if _, err := again.Key(context.Background(), before.KID()); err != nil {
				t.Fatalf("retired key lost on reload: %v", err)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	r, err := keys.NewRing(keys.WithJWKSMaxAge(2 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + keys.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=120" ||
		resp.Header.Get("Content-Type") != "application/jwk-set+json" || resp.Header.Get("ETag") == "" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	tests := []struct {
		name   string
		method string
		etag   string
		want   int
	}{
		{"conditional GET", http.MethodGet, resp.Header.Get("ETag"), http.StatusNotModified},
		{"stale ETag", http.MethodGet, `"old"`, http.StatusOK},
		{"HEAD", http.MethodHead, "", http.StatusOK},
		{"POST", http.MethodPost, "", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, srv.URL+keys.WellKnownPath, nil)
			if tc.etag != "" {
				req.Header.Set("If-None-Match", tc.etag)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func jwksCases() []struct {
	name string
	body string
	kids int
	want error
} {
	const x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	const ecx, ecy = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
	return []struct {
		name string
		body string
		kids int
		want error
	}{
		{"ed25519", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","use":"sig","alg":"EdDSA"}]}`, 1, nil},
		{"p256", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + ecx + `","y":"` + ecy + `","kid":"e","alg":"ES256"}]}`, 1, nil},
		{"rsa and enc keys skipped", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","use":"enc"},{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`, 0, nil},
		{"not JSON", `{"keys":[`, 0, keys.ErrMalformedKey},
		{"no keys member", `{"kees":[]}`, 0, keys.ErrMalformedKey},
		{"keys not an array", `{"keys":{}}`, 0, keys.ErrMalformedKey},
		{"duplicate keys member", `{"keys":[],"keys":[]}`, 0, keys.ErrMalformedKey},
		{"case-variant member", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","KID":"a","kid":"b"}]}`, 0, keys.ErrMalformedKey},
		{"duplicate x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","x":"` + x + `","kid":"a"}]}`, 0, keys.ErrMalformedKey},
		{"short x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}]}`, 0, nil},                                  // ignored (RFC 7517 section 5)
		{"padded x", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `=","kid":"a"}]}`, 0, nil},                           // ignored (RFC 7517 section 5)
		{"point not on curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + ecx + `","y":"` + ecx + `","kid":"e"}]}`, 0, nil}, // ignored (RFC 7517 section 5)
		{"alg mismatch", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"ES256"}]}`, 0, nil},          // ignored (RFC 7517 section 5)
		{"private key material", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"` + x + `","kid":"a"}]}`, 0, keys.ErrMalformedKey},
		{"missing kid", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}`, 0, nil}, // ignored (RFC 7517 section 5)
		{"duplicate kid", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a"},{"kty":"EC","crv":"P-256","x":"` + ecx + `","y":"` + ecy + `","kid":"a"}]}`, 0, keys.ErrMalformedKey},
		{"kid not a string", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":7}]}`, 0, nil}, // ignored (RFC 7517 section 5)
		{"invalid UTF-8", "{\"keys\":[],\"x\":\"\xff\"}", 0, keys.ErrMalformedKey},
		{"trailing data", `{"keys":[]} {}`, 0, keys.ErrMalformedKey},
		{"too many keys", `{"keys":[` + strings.TrimSuffix(strings.Repeat(`{"kty":"RSA"},`, keys.MaxJWKSKeys+1), ",") + `]}`, 0, keys.ErrMalformedKey},
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	for _, tc := range jwksCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := keys.ParseJWKS([]byte(tc.body))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(got) != tc.kids {
				t.Fatalf("%d keys, want %d", len(got), tc.kids)
			}
		})
	}
}

// FuzzParseJWKS checks that no input panics the JWK Set parser and that
// every key it returns is usable and round-trips.
func FuzzParseJWKS(f *testing.F) {
	for _, tc := range jwksCases() {
		f.Add([]byte(tc.body))
	}
	r, err := keys.NewRing()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.JWKS())
	// An RSA set as providers publish it: no alg, x5c beside n and e.
	f.Add([]byte(`{"keys":[` + rsaJWK(&testRSA(f).PublicKey, `,"use":"sig","x5c":["MIIB"]`) + `,` + strings.Replace(rsaJWK(&testRSA(f).PublicKey, `,"alg":"PS256"`), `"kid":"r1"`, `"kid":"r2"`, 1) + `]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := keys.ParseJWKS(data)
		if err != nil {
			if !errors.Is(err, keys.ErrMalformedKey) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := keys.ParseJWKS(keys.MarshalJWKS(got))
		if err != nil || len(again) != len(got) {
			t.Fatalf("re-marshalled set does not parse back: %v", err)
		}
		for i, k := range got {
			if k.KID() == "" || !slices.Contains([]string{keys.EdDSA, keys.ES256, keys.RS256, keys.PS256}, k.Algorithm()) || again[i].Thumbprint() != k.Thumbprint() {
				t.Fatalf("key %d unusable or changed by a round trip", i)
			}
		}
	})
}
