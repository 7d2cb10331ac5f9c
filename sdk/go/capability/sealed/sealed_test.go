package sealed_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

var constraints = map[string]string{"authorization_id": "auth_123", "amount_sha256": strings.Repeat("ab", 32)}

func dirRing(t testing.TB) *vault.Keyring {
	t.Helper()
	ring, err := vault.LoadDir(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func sealer(t testing.TB, ring *vault.Keyring, issuer, alg string) *sealed.Sealer {
	t.Helper()
	s, err := sealed.New(ring, issuer, alg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	for _, alg := range []string{"", sealed.Dir, sealed.A256KW} {
		t.Run("alg="+alg, func(t *testing.T) {
			s := sealer(t, dirRing(t), "payments", alg)
			c, err := s.Seal(constraints)
			if err != nil {
				t.Fatal(err)
			}
			if !sealed.IsSealed(c) {
				t.Fatalf("sealed constraints %v are not IsSealed", c)
			}
			for _, v := range constraints {
				if strings.Contains(c[sealed.Member], v) {
					t.Fatalf("sealed value shows %q", v)
				}
			}
			h, err := sealed.Describe(c)
			if err != nil {
				t.Fatal(err)
			}
			want := alg
			if want == "" {
				want = sealed.Dir
			}
			if h.Alg != want || h.Enc != "A256GCM" || h.KID != "v1" || h.Version != 1 {
				t.Fatalf("header %+v", h)
			}
			got, err := s.Open(c)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, constraints) {
				t.Fatalf("opened %v, want %v", got, constraints)
			}
		})
	}
}

// Every token gets its own IV (dir) or content key (A256KW): two seals of
// the same constraints differ.
func TestFreshCiphertext(t *testing.T) {
	s := sealer(t, dirRing(t), "payments", "")
	a, _ := s.Seal(constraints)
	b, _ := s.Seal(constraints)
	if a[sealed.Member] == b[sealed.Member] {
		t.Fatal("two seals are identical")
	}
}

// Rotation as the vault's: seal with the current version, open any version
// the ring still holds, also in another process that loads the directory
// after the rotation.
func TestRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vault")
	ring, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := sealer(t, ring, "payments", "")
	old, err := s.Seal(constraints)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Seal(constraints)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := sealed.Describe(cur); h.KID != "v2" {
		t.Fatalf("after rotation kid %q, want v2", h.KID)
	}
	if h, _ := sealed.Describe(old); h.KID != "v1" {
		t.Fatalf("before rotation kid %q, want v1", h.KID)
	}
	reloaded, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*vault.Keyring{ring, reloaded} {
		s := sealer(t, r, "payments", sealed.A256KW) // the alg sealed with is read from the header
		for _, c := range []map[string]string{old, cur} {
			got, err := s.Open(c)
			if err != nil || !maps.Equal(got, constraints) {
				t.Fatalf("open %s: %v %v", c[sealed.Member][:20], got, err)
			}
		}
	}
	// A process that loaded the ring before the rotation picks the new key
	// file up when it meets its version, as vault records do.
	early, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	newest, _ := s.Seal(constraints) // s still at v2: a running process seals with what it loaded
	if h, _ := sealed.Describe(newest); h.KID != "v3" {
		t.Fatalf("ring rotated in process: kid %q, want v3", h.KID)
	}
	if _, err := sealer(t, early, "payments", "").Open(newest); err != nil {
		t.Fatalf("a ring loaded before the rotation: %v", err)
	}
}

// Only the issuer opens: another issuer over the same ring (the embedded
// process shares one), or any other ring, cannot.
func TestOtherIssuerOrRing(t *testing.T) {
	ring := dirRing(t)
	c, err := sealer(t, ring, "payments", "").Seal(constraints)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*sealed.Sealer{
		"coupons, same ring":   sealer(t, ring, "coupons", ""),
		"payments, other ring": sealer(t, dirRing(t), "payments", ""),
	} {
		if _, err := s.Open(c); !errors.Is(err, sealed.ErrSealed) {
			t.Errorf("%s opened it: %v", name, err)
		}
	}
}

func TestUnknownKeyVersion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vault")
	ring, _ := vault.LoadDir(dir)
	_, _ = ring.Rotate()
	c, err := sealer(t, ring, "payments", "").Seal(constraints) // v2
	if err != nil {
		t.Fatal(err)
	}
	k1, err := vault.ParseKeys("1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sealer(t, k1, "payments", "").Open(c)
	if !errors.Is(err, sealed.ErrSealed) || !errors.Is(err, vault.ErrUnknownKeyVersion) {
		t.Fatalf("kid v2 on a ring of v1: %v", err)
	}
}

// joseSeal makes a JWE with go-jose directly, for what the sealer never
// writes.
func joseSeal(t *testing.T, enc jose.ContentEncryption, alg jose.KeyAlgorithm, key any, kid string, opts *jose.EncrypterOptions) map[string]string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(`{"a":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{sealed.Member: s}
}

// Refusals: the right key in every case where it applies, so that only the
// rule refuses.
func TestRefusals(t *testing.T) {
	ring := dirRing(t)
	s := sealer(t, ring, "payments", "")
	key, err := ring.DeriveKey(1, sealed.Purpose("payments"))
	if err != nil {
		t.Fatal(err)
	}
	// Sanity: go-jose with the right key, alg and enc opens.
	if _, err := s.Open(joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v1", nil)); err != nil {
		t.Fatalf("a well-formed JWE: %v", err)
	}
	good, _ := s.Seal(constraints)
	parts := strings.Split(good[sealed.Member], ".")
	header := func(json string) map[string]string {
		p := append([]string{base64.RawURLEncoding.EncodeToString([]byte(json))}, parts[1:]...)
		return map[string]string{sealed.Member: strings.Join(p, ".")}
	}
	flip := func(i int) map[string]string {
		p := append([]string(nil), parts...)
		b := []byte(p[i])
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		p[i] = string(b)
		return map[string]string{sealed.Member: strings.Join(p, ".")}
	}
	short := make([]byte, 16)
	_, _ = rand.Read(short)
	cases := map[string]map[string]string{
		"zip (DEFLATE)":           joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v1", &jose.EncrypterOptions{Compression: jose.DEFLATE}),
		"enc A128GCM":             joseSeal(t, jose.A128GCM, jose.DIRECT, short, "v1", nil),
		"enc A256CBC-HS512":       joseSeal(t, jose.A256CBC_HS512, jose.A256KW, key, "v1", nil),
		"alg A256GCMKW":           joseSeal(t, jose.A256GCM, jose.A256GCMKW, key, "v1", nil),
		"alg PBES2":               joseSeal(t, jose.A256GCM, jose.PBES2_HS256_A128KW, "password", "v1", nil),
		"cty header":              joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v1", (&jose.EncrypterOptions{}).WithContentType("JWT")),
		"typ header":              joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v1", (&jose.EncrypterOptions{}).WithType("JWE")),
		"no kid":                  joseSeal(t, jose.A256GCM, jose.DIRECT, key, "", nil),
		"kid not a version":       joseSeal(t, jose.A256GCM, jose.DIRECT, key, "payments", nil),
		"kid v0":                  joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v0", nil),
		"kid v01":                 joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v01", nil),
		"kid beyond uint32":       joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v4294967296", nil),
		"kid of another version":  joseSeal(t, jose.A256GCM, jose.DIRECT, key, "v7", nil),
		"alg none":                header(`{"alg":"none","enc":"A256GCM","kid":"v1"}`),
		"duplicate alg":           header(`{"alg":"A256KW","alg":"dir","enc":"A256GCM","kid":"v1"}`),
		"crit":                    header(`{"alg":"dir","enc":"A256GCM","kid":"v1","crit":["exp"]}`),
		"jku":                     header(`{"alg":"dir","enc":"A256GCM","kid":"v1","jku":"https://evil"}`),
		"zip in a crafted header": header(`{"alg":"dir","enc":"A256GCM","kid":"v1","zip":"DEF"}`),
		"header not an object":    header(`["dir"]`),
		"numeric kid":             header(`{"alg":"dir","enc":"A256GCM","kid":1}`),
		"trailing data":           header(`{"alg":"dir","enc":"A256GCM","kid":"v1"}x`),
		"header changed (AAD)":    header(`{"enc":"A256GCM","alg":"dir","kid":"v1"}`),
		"iv flipped":              flip(2),
		"ciphertext flipped":      flip(3),
		"tag flipped":             flip(4),
		"encrypted key with dir":  {sealed.Member: parts[0] + ".AAAA." + strings.Join(parts[2:], ".")},
		"four segments":           {sealed.Member: strings.Join(parts[:4], ".")},
		"too large":               {sealed.Member: strings.Repeat("A", sealed.MaxSize+1)},
		"another member too":      {sealed.Member: good[sealed.Member], "coupon_id": "c1"},
		"not sealed":              constraints,
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := s.Open(c)
			if !errors.Is(err, sealed.ErrSealed) {
				t.Fatalf("opened %v, err %v", got, err)
			}
			if v := c[sealed.Member]; len(v) > 40 && strings.Contains(err.Error(), v[:40]) {
				t.Fatalf("error quotes the value: %v", err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	ring := dirRing(t)
	for _, alg := range []string{"A128KW", "RSA-OAEP", "none", "DIR"} {
		if _, err := sealed.New(ring, "payments", alg); !errors.Is(err, sealed.ErrConfig) {
			t.Errorf("alg %q: %v", alg, err)
		}
	}
	if _, err := sealed.New(nil, "payments", ""); !errors.Is(err, sealed.ErrConfig) {
		t.Error("nil ring accepted")
	}
	if _, err := sealed.New(ring, "", ""); !errors.Is(err, sealed.ErrConfig) {
		t.Error("empty issuer accepted")
	}
	s := sealer(t, ring, "payments", "")
	c, _ := s.Seal(constraints)
	if _, err := s.Seal(c); !errors.Is(err, sealed.ErrConfig) {
		t.Errorf("sealing sealed constraints: %v", err)
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, alg := range []string{sealed.Dir, sealed.A256KW} {
		b.Run(alg, func(b *testing.B) {
			s := sealer(b, dirRing(b), "payments", alg)
			for b.Loop() {
				if _, err := s.Seal(constraints); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, alg := range []string{sealed.Dir, sealed.A256KW} {
		b.Run(alg, func(b *testing.B) {
			s := sealer(b, dirRing(b), "payments", alg)
			c, _ := s.Seal(constraints)
			for b.Loop() {
				if _, err := s.Open(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
