package keys

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// WellKnownPath is where an issuer serves its JWK Set.
const WellKnownPath = "/.well-known/jwks.json"

// RingFile is the name of the key file inside a ring directory.
const RingFile = "keyring.json"

// Defaults of the ring options.
const (
	// DefaultRetention is how long a retired key stays published: the
	// longest token lifetime in the system (the checkout token's cap, one
	// hour) plus the largest verifier leeway (30 s), rounded up.
	DefaultRetention = 61 * time.Minute
	// DefaultJWKSMaxAge is the Cache-Control max-age of the JWKS response.
	DefaultJWKSMaxAge = 5 * time.Minute
	// DefaultPublishWindow is how long a next key must have been published
	// before RotateAfter promotes it: the verifiers' JWKS refresh interval
	// (jwks.DefaultRefreshInterval, one hour), after which every verifier
	// that cached the ring's JWKS has fetched it again and knows the key.
	DefaultPublishWindow = time.Hour
)

// ErrRotateTooSoon reports a rotation refused by RotateAfter: the next key
// was published too recently for every verifier to know it.
var ErrRotateTooSoon = errors.New("keys: the next key was published too recently to be promoted")

// RingOption configures a Ring.
type RingOption func(*Ring)

// WithAlgorithm sets the algorithm of keys the ring generates: EdDSA (the
// default) or ES256. Keys loaded from disk keep their own algorithm.
func WithAlgorithm(alg string) RingOption { return func(r *Ring) { r.alg = alg } }

// WithRetention sets how long a retired key stays published after Rotate.
// It must be at least the longest lifetime of any token the ring signs plus
// the verifiers' leeway, or tokens signed just before a rotation stop
// verifying early. Default DefaultRetention.
func WithRetention(d time.Duration) RingOption { return func(r *Ring) { r.retention = d } }

// WithJWKSMaxAge sets the Cache-Control max-age of Handler's responses.
// Default DefaultJWKSMaxAge. Keep it well below the time between publishing
// a next key and promoting it.
func WithJWKSMaxAge(d time.Duration) RingOption { return func(r *Ring) { r.maxAge = d } }

// WithRingClock sets the clock used for retirement and pruning. Default
// time.Now.
func WithRingClock(now func() time.Time) RingOption { return func(r *Ring) { r.now = now } }

// Ring is one issuer's key ring. It is safe for concurrent use; it signs with
// the current key, publishes current, next and unexpired retired keys, and
// resolves any of them as a Source.
type Ring struct {
	alg       string
	retention time.Duration
	maxAge    time.Duration
	now       func() time.Time
	dir       string

	mu   sync.Mutex // serialises Rotate and pruning; readers use view
	view atomic.Pointer[ringView]
}

// ringView is an immutable snapshot, swapped atomically so that signing and
// key lookups take no lock.
type ringView struct {
	current *ringKey
	next    *ringKey
	retired []*ringKey
	byKID   map[string]*PublicKey
	jwks    []byte
	etag    string
	pruneAt time.Time // zero when nothing is retired
}

type ringKey struct {
	priv        *PrivateKey
	created     time.Time
	retireUntil time.Time // only for retired keys
}

// NewRing returns an in-memory ring with a fresh current and next key. Its
// keys are lost when the process exits: use it for tests and for workload
// keys that verifiers learn through the running process's JWKS.
func NewRing(opts ...RingOption) (*Ring, error) {
	r := newRing(opts)
	v, err := r.fresh()
	if err != nil {
		return nil, err
	}
	r.publish(v)
	return r, nil
}

// OpenRing opens the ring persisted in dir, creating the directory (mode
// 0700) and a ring with fresh keys (file mode 0600) when there is none. It
// refuses with ErrInsecurePermissions a directory or key file that group or
// others may access: the keys must then be considered leaked, so fixing the
// mode silently would hide the incident. Retired keys past their retention
// are dropped on load.
func OpenRing(dir string, opts ...RingOption) (*Ring, error) {
	r := newRing(opts)
	r.dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: create ring directory: %w", err)
	}
	if err := checkPerm(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, RingFile)
	data, err := readPrivateFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v, err := r.fresh()
		if err != nil {
			return nil, err
		}
		if err := r.save(v); err != nil {
			return nil, err
		}
		r.publish(v)
		return r, nil
	case err != nil:
		return nil, err
	}
	v, err := decodeRing(data, r.now())
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	r.publish(v)
	return r, nil
}

func newRing(opts []RingOption) *Ring {
	r := &Ring{alg: EdDSA, retention: DefaultRetention, maxAge: DefaultJWKSMaxAge, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *Ring) fresh() (*ringView, error) {
	cur, err := GenerateKey(r.alg)
	if err != nil {
		return nil, err
	}
	next, err := GenerateKey(r.alg)
	if err != nil {
		return nil, err
	}
	now := r.now()
	return &ringView{current: &ringKey{priv: cur, created: now}, next: &ringKey{priv: next, created: now}}, nil
}

// SigningKey returns the current key. It implements Signer.
func (r *Ring) SigningKey() (*PrivateKey, error) { return r.snapshot().current.priv, nil }

// Key returns the current, next or unexpired retired key with the given kid.
// It implements Source for verifiers in the same process.
func (r *Ring) Key(_ context.Context, kid string) (*PublicKey, error) {
	if k, ok := r.snapshot().byKID[kid]; ok {
		return k, nil
	}
	return nil, ErrKeyNotFound
}

// PublicKeys returns the published keys: current, next, then retired.
func (r *Ring) PublicKeys() []*PublicKey {
	v := r.snapshot()
	out := []*PublicKey{v.current.priv.pub, v.next.priv.pub}
	for _, k := range v.retired {
		out = append(out, k.priv.pub)
	}
	return out
}

// JWKS returns the JWK Set document of PublicKeys.
func (r *Ring) JWKS() []byte { return r.snapshot().jwks }

// Rotate promotes the next key to current, retires the current key until
// now plus the retention, prunes expired retired keys and generates a new
// next key, persisting the ring first when it has a directory (on a write
// error the ring is unchanged). Verifiers learn the promoted key from the
// JWKS they already cached, so rotate no more often than their refresh
// interval (one hour by default): RotateAfter refuses a rotation that comes
// sooner.
func (r *Ring) Rotate() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotate()
}

// RotateAfter is Rotate, refused with ErrRotateTooSoon while the next key
// was created less than window ago (by the ring's clock, WithRingClock):
// a verifier that cached the JWKS just before the next key was published
// learns it only at its next refresh, and until then would refuse every
// token the promoted key signs (as a bad signature, unless it refetches
// unknown kids). Pass DefaultPublishWindow, or the verifiers' refresh
// interval if longer. The next key is published from its creation on in a
// process that created it, and from its restart in one that loaded the ring
// earlier: restart the issuing service right after each rotation. A next
// key without a creation time (a ring file written without it) is
// promoted.
func (r *Ring) RotateAfter(window time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.view.Load().next
	if now, from := r.now(), next.created.Add(window); !next.created.IsZero() && now.Before(from) {
		return fmt.Errorf("%w: next key %s published at %s, %s ago; it may be promoted from %s",
			ErrRotateTooSoon, next.priv.KID(), next.created.UTC().Format(time.RFC3339),
			now.Sub(next.created).Round(time.Second), from.UTC().Format(time.RFC3339))
	}
	return r.rotate()
}

// rotate is Rotate under r.mu.
func (r *Ring) rotate() error {
	old := r.view.Load()
	next, err := GenerateKey(r.alg)
	if err != nil {
		return err
	}
	now := r.now()
	v := &ringView{
		current: old.next,
		next:    &ringKey{priv: next, created: now},
		retired: append(live(old.retired, now), &ringKey{priv: old.current.priv, created: old.current.created, retireUntil: now.Add(r.retention)}),
	}
	if err := r.save(v); err != nil {
		return err
	}
	r.publish(v)
	return nil
}

// snapshot returns the current view, pruning retired keys whose retention
// has ended. The pruned view is not written to disk; OpenRing drops expired
// keys on load, so the file needs no write just for pruning.
func (r *Ring) snapshot() *ringView {
	v := r.view.Load()
	if v.pruneAt.IsZero() || r.now().Before(v.pruneAt) {
		return v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v = r.view.Load()
	if v.pruneAt.IsZero() || r.now().Before(v.pruneAt) {
		return v
	}
	pruned := &ringView{current: v.current, next: v.next, retired: live(v.retired, r.now())}
	r.publish(pruned)
	return r.view.Load()
}

func live(retired []*ringKey, now time.Time) []*ringKey {
	var out []*ringKey
	for _, k := range retired {
		if now.Before(k.retireUntil) {
			out = append(out, k)
		}
	}
	return out
}

// publish completes v's derived fields and makes it the current view.
func (r *Ring) publish(v *ringView) {
	v.byKID = map[string]*PublicKey{v.current.priv.KID(): v.current.priv.pub, v.next.priv.KID(): v.next.priv.pub}
	pubs := []*PublicKey{v.current.priv.pub, v.next.priv.pub}
	for _, k := range v.retired {
		v.byKID[k.priv.KID()] = k.priv.pub
		pubs = append(pubs, k.priv.pub)
		if v.pruneAt.IsZero() || k.retireUntil.Before(v.pruneAt) {
			v.pruneAt = k.retireUntil
		}
	}
	v.jwks = MarshalJWKS(pubs)
	sum := sha256.Sum256(v.jwks)
	v.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	r.view.Store(v)
}

// Handler serves the ring's JWK Set (mount it at WellKnownPath) to GET and
// HEAD with Content-Type application/jwk-set+json, a public Cache-Control
// max-age (WithJWKSMaxAge) and a strong ETag; a matching If-None-Match gets
// 304 Not Modified.
func (r *Ring) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		v := r.snapshot()
		h := w.Header()
		h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(r.maxAge/time.Second)))
		h.Set("ETag", v.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if req.Header.Get("If-None-Match") == v.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Content-Length", fmt.Sprint(len(v.jwks)))
		if req.Method == http.MethodGet {
			_, _ = w.Write(v.jwks)
		}
	})
}

// ringDoc is the on-disk format of a ring.
type ringDoc struct {
	Version int          `json:"version"`
	Keys    []ringDocKey `json:"keys"`
}

type ringDocKey struct {
	Role        string    `json:"role"` // current, next or retired
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	Created     time.Time `json:"created"`
	RetireUntil time.Time `json:"retire_until,omitzero"`
	PKCS8       []byte    `json:"pkcs8"`
}

func (r *Ring) save(v *ringView) error {
	if r.dir == "" {
		return nil
	}
	doc := ringDoc{Version: 1}
	add := func(role string, k *ringKey) error {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv.signer)
		if err != nil {
			return fmt.Errorf("keys: encode key: %w", err)
		}
		doc.Keys = append(doc.Keys, ringDocKey{Role: role, KID: k.priv.KID(), Alg: k.priv.Algorithm(), Created: k.created, RetireUntil: k.retireUntil, PKCS8: der})
		return nil
	}
	if err := add("current", v.current); err != nil {
		return err
	}
	if err := add("next", v.next); err != nil {
		return err
	}
	for _, k := range v.retired {
		if err := add("retired", k); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("keys: encode ring: %w", err)
	}
	// Write a private temporary file and rename it over the ring, so that a
	// crash leaves either the old or the new ring, never half of one.
	tmp, err := os.CreateTemp(r.dir, RingFile+".*")
	if err != nil {
		return fmt.Errorf("keys: write ring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write ring: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write ring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write ring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: write ring: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(r.dir, RingFile)); err != nil {
		return fmt.Errorf("keys: write ring: %w", err)
	}
	return nil
}

func decodeRing(data []byte, now time.Time) (*ringView, error) {
	var doc ringDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("%w: unknown ring version %d", ErrMalformedKey, doc.Version)
	}
	v := &ringView{}
	for _, dk := range doc.Keys {
		raw, err := x509.ParsePKCS8PrivateKey(dk.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: %w", ErrMalformedKey, dk.KID, err)
		}
		signer, ok := raw.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: key %s is not a signing key", ErrUnsupportedAlgorithm, dk.KID)
		}
		priv, err := NewPrivateKey(signer)
		if err != nil {
			return nil, err
		}
		// The kid is derived from the key, so a mismatch means the file was
		// edited or corrupted; refuse rather than publish a wrong kid.
		if priv.KID() != dk.KID || priv.Algorithm() != dk.Alg {
			return nil, fmt.Errorf("%w: key %s: kid or alg does not match the key", ErrMalformedKey, dk.KID)
		}
		k := &ringKey{priv: priv, created: dk.Created, retireUntil: dk.RetireUntil}
		switch dk.Role {
		case "current":
			v.current = k
		case "next":
			v.next = k
		case "retired":
			if now.Before(k.retireUntil) {
				v.retired = append(v.retired, k)
			}
		default:
			return nil, fmt.Errorf("%w: key %s: unknown role", ErrMalformedKey, dk.KID)
		}
	}
	if v.current == nil || v.next == nil {
		return nil, fmt.Errorf("%w: ring needs a current and a next key", ErrMalformedKey)
	}
	return v, nil
}

// checkPerm refuses a path that group or others may access.
func checkPerm(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %v, want no group or other access", ErrInsecurePermissions, path, fi.Mode().Perm())
	}
	return nil
}

func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	// Check the opened file, not the path, so that a swap between the check
	// and the read cannot slip a readable file in.
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v, want 0600", ErrInsecurePermissions, path, fi.Mode().Perm())
	}
	if !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return nil, fmt.Errorf("%w: %s is not a regular file of at most 1 MiB", ErrMalformedKey, path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return data, nil
}
