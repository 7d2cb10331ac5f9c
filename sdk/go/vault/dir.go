package vault

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// keyFileSuffix ends the name of every key file: <version>.key.
const keyFileSuffix = ".key"

// maxKeyFileSize bounds what is read from a key file: a base64 key and a
// newline fit many times over.
const maxKeyFileSize = 1024

// rotateAttempts bounds how often Rotate retries when other processes keep
// taking the version it tries to create.
const rotateAttempts = 10

// LoadDir returns a ring backed by the key directory dir (see the package
// documentation for the layout), creating dir with mode 0700 and a first
// key, version 1, when there is none. It fails with [ErrInsecurePermissions]
// when dir or a key file grants any access to group or others, and with
// [ErrInvalidKeys] on an unreadable key or on anything but a regular file
// named <version>.key; names of other forms are ignored.
func LoadDir(dir string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("vault: key directory: %w", err)
	}
	k := &Keyring{dir: dir}
	if err := k.reload(); err != nil {
		return nil, err
	}
	if k.Current() == 0 {
		// Processes starting together on an empty directory all try
		// version 1; the losers adopt the winner's key.
		if err := createKeyFile(dir, 1); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if err := k.reload(); err != nil {
			return nil, err
		}
		if k.Current() == 0 {
			return nil, fmt.Errorf("%w: no key in %s", ErrInvalidKeys, dir)
		}
	}
	return k, nil
}

// reload reads every key file of k.dir and replaces the ring's keys. Every
// version already held must still be there: a key file that disappeared
// would make its records unreadable, so that is an error rather than a
// silent change.
func (k *Keyring) reload() error {
	info, err := os.Stat(k.dir)
	if err != nil {
		return fmt.Errorf("vault: key directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("vault: key directory %s is not a directory", k.dir)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: directory %s has mode %v, want 0700", ErrInsecurePermissions, k.dir, info.Mode().Perm())
	}
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return fmt.Errorf("vault: key directory: %w", err)
	}
	fresh := &Keyring{aeads: map[uint32]cipher.AEAD{}}
	for _, e := range entries {
		stem, ok := strings.CutSuffix(e.Name(), keyFileSuffix)
		if !ok {
			continue
		}
		ver, err := parseVersion(stem)
		if err != nil {
			continue // not a key file: an editor backup, a temp file
		}
		key, err := readKeyFile(filepath.Join(k.dir, e.Name()))
		if err != nil {
			return err
		}
		err = fresh.add(ver, key)
		clear(key)
		if err != nil {
			return err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for ver := range k.aeads {
		if _, ok := fresh.aeads[ver]; !ok {
			return fmt.Errorf("%w: key version %d disappeared from %s", ErrInvalidKeys, ver, k.dir)
		}
	}
	k.aeads, k.prks, k.current = fresh.aeads, fresh.prks, fresh.current
	return nil
}

// readKeyFile reads one base64 key, refusing a file others may read.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vault: key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vault: key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalidKeys, path)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v, want 0600", ErrInsecurePermissions, path, info.Mode().Perm())
	}
	text, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("vault: key file: %w", err)
	}
	defer clear(text)
	if len(text) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is too large for a key file", ErrInvalidKeys, path)
	}
	key, err := decodeKey(string(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidKeys, path, err)
	}
	return key, nil
}

// Rotate generates a key under a version above every one in the key
// directory, stores it, and makes it current; it returns the new version.
// Records sealed before keep decrypting; move them with
// [Keyring.Reencrypt]. Other processes using the same directory pick the
// key up on restart, or when they meet a record sealed with it. Rings not
// from [LoadDir] return [ErrReadOnly].
func (k *Keyring) Rotate() (uint32, error) {
	if k.dir == "" {
		return 0, ErrReadOnly
	}
	for range rotateAttempts {
		if err := k.reload(); err != nil {
			return 0, err
		}
		ver := k.Current() + 1
		if ver == 0 {
			return 0, fmt.Errorf("%w: key versions exhausted", ErrInvalidKeys)
		}
		err := createKeyFile(k.dir, ver)
		if errors.Is(err, fs.ErrExist) {
			continue // another process took ver; read its key and go on
		}
		if err != nil {
			return 0, err
		}
		if err := k.reload(); err != nil {
			return 0, err
		}
		return ver, nil
	}
	return 0, fmt.Errorf("vault: rotate: versions kept being taken by other processes")
}

// createKeyFile writes a new random key as dir/<ver>.key without ever
// replacing an existing file: the key is written and synced under a
// temporary name, then hard-linked into place, which fails with
// fs.ErrExist if the name is taken.
func createKeyFile(dir string, ver uint32) (err error) {
	key := make([]byte, KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("vault: generate key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".new-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("vault: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	text := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(text)
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return fmt.Errorf("vault: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("vault: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("vault: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(dir, formatVersion(ver)+keyFileSuffix)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("vault: write key: %w", err)
	}
	// Make the new name durable before any record is sealed with the key.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("vault: sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("vault: sync key directory: %w", err)
	}
	return nil
}
