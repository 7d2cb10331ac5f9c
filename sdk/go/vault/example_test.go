package vault_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// A service seals a confirmation token under the id of the row that holds
// it, and opens it again when the saga needs it.
func Example() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	keys, err := vault.LoadDir(filepath.Join(dir, "keys")) // generates version 1
	if err != nil {
		fmt.Println(err)
		return
	}
	const id = "orders/op_123/tokens/coupons"
	rec, err := keys.Encrypt([]byte("eyJhbGciOiJFZERTQSJ9..."), id)
	if err != nil {
		fmt.Println(err)
		return
	}
	column := rec.Encode() // "v1.<nonce>.<ciphertext>", what the database holds
	parsed, err := vault.ParseRecord(column)
	if err != nil {
		fmt.Println(err)
		return
	}
	token, err := keys.Decrypt(parsed, id)
	fmt.Printf("%s %v\n", token, err)
	_, err = keys.Decrypt(parsed, "orders/op_999/tokens/coupons")
	fmt.Println(err)
	// Output:
	// eyJhbGciOiJFZERTQSJ9... <nil>
	// vault: decryption failed
}

// Rotation adds a key version; Reencrypt moves each stored record to it.
func ExampleKeyring_Reencrypt() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	keys, err := vault.LoadDir(filepath.Join(dir, "keys"))
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := keys.Encrypt([]byte("refresh material"), "sessions/s1")
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := keys.Rotate(); err != nil {
		fmt.Println(err)
		return
	}
	moved, changed, err := keys.Reencrypt(rec, "sessions/s1")
	fmt.Println(rec.Version, "->", moved.Version, changed, err)
	_, changed, err = keys.Reencrypt(moved, "sessions/s1")
	fmt.Println("again:", changed, err)
	// Output:
	// 1 -> 2 true <nil>
	// again: false <nil>
}
