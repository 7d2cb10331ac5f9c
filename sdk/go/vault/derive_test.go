package vault_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	k1, k2 := bytes.Repeat([]byte{1}, vault.KeySize), bytes.Repeat([]byte{2}, vault.KeySize)
	ring, err := vault.New(map[uint32][]byte{1: k1, 2: k2})
	if err != nil {
		t.Fatal(err)
	}
	same, _ := vault.ParseKeys("1:" + base64.StdEncoding.EncodeToString(k1) + ",2:" + base64.StdEncoding.EncodeToString(k2))
	a, err := ring.DeriveKey(1, "payments")
	if err != nil || len(a) != vault.KeySize {
		t.Fatalf("DeriveKey: %d bytes, %v", len(a), err)
	}
	if b, _ := same.DeriveKey(1, "payments"); !bytes.Equal(a, b) {
		t.Fatal("the same key and purpose derive different keys")
	}
	for name, f := range map[string]func() ([]byte, error){
		"another purpose": func() ([]byte, error) { return ring.DeriveKey(1, "coupons") },
		"another version": func() ([]byte, error) { return ring.DeriveKey(2, "payments") },
	} {
		if b, err := f(); err != nil || bytes.Equal(a, b) {
			t.Errorf("%s: same key or %v", name, err)
		}
	}
	if bytes.Equal(a, k1) {
		t.Fatal("the derived key is the vault key")
	}
	ver, cur, err := ring.DeriveCurrent("payments")
	want, _ := ring.DeriveKey(2, "payments")
	if err != nil || ver != 2 || !bytes.Equal(cur, want) {
		t.Fatalf("DeriveCurrent: %d, %v", ver, err)
	}
	if _, err := ring.DeriveKey(3, "payments"); !errors.Is(err, vault.ErrUnknownKeyVersion) {
		t.Errorf("unknown version: %v", err)
	}
	if _, err := ring.DeriveKey(1, ""); !errors.Is(err, vault.ErrEmptyPurpose) {
		t.Errorf("empty purpose: %v", err)
	}
	if _, _, err := ring.DeriveCurrent(""); !errors.Is(err, vault.ErrEmptyPurpose) {
		t.Errorf("empty purpose: %v", err)
	}
}

// A directory ring derives from a version another process added, as it
// decrypts its records.
func TestDeriveKeyReloads(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vault")
	early, err := vault.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rotator, _ := vault.LoadDir(dir)
	if _, err := rotator.Rotate(); err != nil {
		t.Fatal(err)
	}
	want, _ := rotator.DeriveKey(2, "payments")
	got, err := early.DeriveKey(2, "payments")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after another process rotated: %v", err)
	}
}
