package capability

import "github.com/tokenrelay/tokenrelay/sdk/go/vault"

// VaultSealer seals tokens with a vault.Keyring (AES-256-GCM, the record id
// as associated data); it implements Sealer.
type VaultSealer struct{ Keyring *vault.Keyring }

// Seal implements Sealer: the result is a vault record's text form.
func (v VaultSealer) Seal(id, plaintext string) (string, error) {
	rec, err := v.Keyring.Encrypt([]byte(plaintext), id)
	if err != nil {
		return "", err
	}
	return rec.Encode(), nil
}

// Open implements Sealer.
func (v VaultSealer) Open(id, sealed string) (string, error) {
	rec, err := vault.ParseRecord(sealed)
	if err != nil {
		return "", err
	}
	p, err := v.Keyring.Decrypt(rec, id)
	return string(p), err
}
