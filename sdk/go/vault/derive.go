package vault

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// deriveSalt is the HKDF salt of every derived key: it separates them from
// any other use of the vault's keys.
const deriveSalt = "tokenrelay/vault/derive/v1"

// ErrEmptyPurpose reports a key derivation without a purpose: every derived
// key must be bound to what it is for.
var ErrEmptyPurpose = errors.New("vault: empty derivation purpose")

// DeriveKey returns the 256-bit key derived for purpose from key version
// ver: HKDF-SHA256 (RFC 5869) of that version's key, with a fixed salt and
// purpose as info. Different purposes get independent keys, and none of
// them reveals the vault key or opens a vault record, so a ring shared by
// several services (the embedded process) still gives each its own key
// (purpose names the service). It returns [ErrUnknownKeyVersion] for a
// version the ring does not hold (after looking for new key files, for a
// ring from [LoadDir]), as [Keyring.Decrypt] does. The caller owns the
// result and should clear it when done.
func (k *Keyring) DeriveKey(ver uint32, purpose string) ([]byte, error) {
	if purpose == "" {
		return nil, ErrEmptyPurpose
	}
	if _, err := k.aead(ver); err != nil { // reloads a directory ring for a newer version
		return nil, err
	}
	k.mu.RLock()
	prk := k.prks[ver]
	k.mu.RUnlock()
	if prk == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKeyVersion, ver)
	}
	return hkdf.Expand(sha256.New, prk, purpose, KeySize)
}

// DeriveCurrent returns the current version and the key derived from it
// for purpose (see [Keyring.DeriveKey]), as one consistent pair: what
// [Keyring.Encrypt] would use, for a sealer of its own format.
func (k *Keyring) DeriveCurrent(purpose string) (uint32, []byte, error) {
	if purpose == "" {
		return 0, nil, ErrEmptyPurpose
	}
	k.mu.RLock()
	ver, prk := k.current, k.prks[k.current]
	k.mu.RUnlock()
	key, err := hkdf.Expand(sha256.New, prk, purpose, KeySize)
	return ver, key, err
}
