package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Sizes fixed by AES-256-GCM as this package uses it.
const (
	// KeySize is the length of every key: 256 bits.
	KeySize   = 32
	nonceSize = 12
	tagSize   = 16
)

// MaxPlaintextSize is the largest value [Keyring.Encrypt] accepts: 16 MiB,
// far above any token, far below GCM's limit of about 64 GiB per message.
const MaxPlaintextSize = 16 << 20

// EnvKeys is the conventional environment variable holding the key ring in
// the format [ParseKeys] reads, for deployments that inject secrets that way.
const EnvKeys = "TOKENRELAY_VAULT_KEYS"

// Errors. None of them carries key material, plaintext or ciphertext.
var (
	// ErrUnknownKeyVersion reports a record sealed by a key version the
	// ring does not hold, such as one retired too early.
	ErrUnknownKeyVersion = errors.New("vault: unknown key version")
	// ErrDecrypt reports a record that does not authenticate: tampered
	// ciphertext or nonce, the wrong record id, or the wrong key. It says
	// no more, by design.
	ErrDecrypt = errors.New("vault: decryption failed")
	// ErrMalformedRecord reports a record whose encoding or shape is
	// invalid, before any decryption.
	ErrMalformedRecord = errors.New("vault: malformed record")
	// ErrTooLarge reports a plaintext above MaxPlaintextSize.
	ErrTooLarge = errors.New("vault: plaintext too large")
	// ErrEmptyID reports an empty record id: every record must be bound
	// to the row that holds it.
	ErrEmptyID = errors.New("vault: empty record id")
	// ErrInvalidKeys reports key material that cannot be used: bad
	// syntax, a key that is not 256 bits, a duplicate or invalid version,
	// or no key at all.
	ErrInvalidKeys = errors.New("vault: invalid keys")
	// ErrInsecurePermissions reports a key directory or file that users
	// other than its owner may access.
	ErrInsecurePermissions = errors.New("vault: key storage accessible to other users")
	// ErrReadOnly reports Rotate on a ring whose keys are not stored by
	// this package (environment or caller-supplied keys).
	ErrReadOnly = errors.New("vault: key ring cannot rotate: keys are managed outside the vault")
)

// Keyring holds versioned AES-256-GCM keys. It is safe for concurrent use.
//
// A Keyring never prints its keys: fmt verbs and slog show its versions only.
type Keyring struct {
	dir string // "" unless loaded by LoadDir

	mu      sync.RWMutex
	aeads   map[uint32]cipher.AEAD
	prks    map[uint32][]byte // HKDF-Extract of each version's key, for DeriveKey
	current uint32
}

// New returns a read-only ring holding keys, each of [KeySize] bytes, by
// version (1 and up); the highest version encrypts. New copies nothing it
// keeps: the keys are expanded into cipher state and may be zeroed
// afterwards.
func New(keys map[uint32][]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for _, ver := range slices.Sorted(maps.Keys(keys)) {
		if err := k.add(ver, keys[ver]); err != nil {
			return nil, err
		}
	}
	if len(k.aeads) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrInvalidKeys)
	}
	return k, nil
}

// ParseKeys returns a read-only ring from comma-separated
// "version:base64key" entries, the format of [EnvKeys]. Keys are standard
// or URL-safe base64, padded or not; whitespace around entries is ignored.
// The highest version encrypts.
func ParseKeys(value string) (*Keyring, error) {
	k := &Keyring{aeads: map[uint32]cipher.AEAD{}}
	for i, entry := range strings.Split(value, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		ver, key, err := parseEntry(entry)
		if err != nil {
			// Name the entry by position: its text is key material.
			return nil, fmt.Errorf("%w: entry %d: %w", ErrInvalidKeys, i+1, err)
		}
		err = k.add(ver, key)
		clear(key)
		if err != nil {
			return nil, err
		}
	}
	if len(k.aeads) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrInvalidKeys)
	}
	return k, nil
}

// parseEntry splits "version:base64key". Its errors never quote the key.
func parseEntry(entry string) (uint32, []byte, error) {
	verText, keyText, ok := strings.Cut(entry, ":")
	if !ok {
		return 0, nil, errors.New(`want "version:base64key"`)
	}
	ver, err := parseVersion(strings.TrimSpace(verText))
	if err != nil {
		return 0, nil, err
	}
	key, err := decodeKey(keyText)
	if err != nil {
		return 0, nil, fmt.Errorf("version %d: %w", ver, err)
	}
	return ver, key, nil
}

// decodeKey reads a base64 key in any of the four common alphabets and
// paddings. Its errors never quote the input.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				clear(key)
				return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
			}
			return key, nil
		}
	}
	return nil, errors.New("key is not base64")
}

// add expands key under ver. The caller holds k.mu or owns k alone.
func (k *Keyring) add(ver uint32, key []byte) error {
	if ver == 0 {
		return fmt.Errorf("%w: version 0", ErrInvalidKeys)
	}
	if _, dup := k.aeads[ver]; dup {
		return fmt.Errorf("%w: version %d given twice", ErrInvalidKeys, ver)
	}
	if len(key) != KeySize {
		return fmt.Errorf("%w: version %d: key is %d bytes, want %d", ErrInvalidKeys, ver, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("%w: version %d: %w", ErrInvalidKeys, ver, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("%w: version %d: %w", ErrInvalidKeys, ver, err)
	}
	k.aeads[ver] = aead
	if k.prks == nil {
		k.prks = map[uint32][]byte{}
	}
	prk, err := hkdf.Extract(sha256.New, key, []byte(deriveSalt))
	if err != nil {
		return fmt.Errorf("%w: version %d: %w", ErrInvalidKeys, ver, err)
	}
	k.prks[ver] = prk
	k.current = max(k.current, ver)
	return nil
}

// Current returns the version that Encrypt uses: the highest one held.
func (k *Keyring) Current() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Versions returns the versions held, in ascending order.
func (k *Keyring) Versions() []uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Sorted(maps.Keys(k.aeads))
}

// Encrypt seals plaintext for the record named id with the current key
// and a fresh random nonce. plaintext may be empty; above
// [MaxPlaintextSize] it is refused with [ErrTooLarge], and an empty id with
// [ErrEmptyID].
func (k *Keyring) Encrypt(plaintext []byte, id string) (Record, error) {
	if id == "" {
		return Record{}, ErrEmptyID
	}
	if len(plaintext) > MaxPlaintextSize {
		return Record{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxPlaintextSize)
	}
	k.mu.RLock()
	ver, aead := k.current, k.aeads[k.current]
	k.mu.RUnlock()
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Record{}, fmt.Errorf("vault: nonce: %w", err)
	}
	return Record{Version: ver, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plaintext, []byte(id))}, nil
}

// Decrypt opens rec for the record named id. It returns
// [ErrMalformedRecord] for a record of impossible shape,
// [ErrUnknownKeyVersion] for a version the ring does not hold (after
// looking for new key files, for a ring from [LoadDir]), and [ErrDecrypt]
// when the record does not authenticate under id.
func (k *Keyring) Decrypt(rec Record, id string) ([]byte, error) {
	if id == "" {
		return nil, ErrEmptyID
	}
	if err := rec.check(); err != nil {
		return nil, err
	}
	aead, err := k.aead(rec.Version)
	if err != nil {
		return nil, err
	}
	plaintext, err := aead.Open(nil, rec.Nonce, rec.Ciphertext, []byte(id))
	if err != nil {
		return nil, ErrDecrypt
	}
	if plaintext == nil {
		plaintext = []byte{}
	}
	return plaintext, nil
}

// aead returns the cipher of version ver, reloading a directory-backed
// ring once if ver is newer than any version it holds: another process
// (a rotation command) has added a key.
func (k *Keyring) aead(ver uint32) (cipher.AEAD, error) {
	k.mu.RLock()
	aead, ok := k.aeads[ver]
	newer := ver > k.current
	k.mu.RUnlock()
	if ok {
		return aead, nil
	}
	if k.dir != "" && newer {
		if err := k.reload(); err != nil {
			return nil, err
		}
		k.mu.RLock()
		aead, ok = k.aeads[ver]
		k.mu.RUnlock()
		if ok {
			return aead, nil
		}
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownKeyVersion, ver)
}

// Reencrypt moves rec, the record named id, to the current key version. It
// authenticates rec in any case; if rec already uses the current version it
// returns rec and changed false, otherwise the new record and changed true.
// A rotation command stores the result when changed.
func (k *Keyring) Reencrypt(rec Record, id string) (_ Record, changed bool, _ error) {
	plaintext, err := k.Decrypt(rec, id)
	if err != nil {
		return Record{}, false, err
	}
	defer clear(plaintext)
	if rec.Version == k.Current() {
		return rec, false, nil
	}
	out, err := k.Encrypt(plaintext, id)
	if err != nil {
		return Record{}, false, err
	}
	return out, true, nil
}

// String describes k by its versions, never its keys.
func (k *Keyring) String() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return fmt.Sprintf("vault.Keyring{current: %d, versions: %v}", k.current, slices.Sorted(maps.Keys(k.aeads)))
}

// Format makes every fmt verb, %#v and %+v included, print [Keyring.String]
// instead of walking the struct into the expanded keys.
func (k *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue makes slog log the versions only.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("current", k.Current()),
		slog.Any("versions", k.Versions()),
	)
}

// formatVersion is the file name stem of a key version.
func formatVersion(ver uint32) string { return strconv.FormatUint(uint64(ver), 10) }
