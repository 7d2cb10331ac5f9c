// Package vault encrypts tokens at rest: confirmation tokens the saga keeps,
// refresh material, anything the design says must not sit in a database in
// the clear.
//
// # Cryptography
//
// Each record is sealed with AES-256-GCM under the current version of a
// [Keyring], with a fresh random 96-bit nonce and the record's id as
// associated data. The id binds a ciphertext to its row: a ciphertext copied
// into another row (another order, another token slot) fails to decrypt. So
// the id must name the record unambiguously, such as
// "orders/op_123/tokens/coupons", and must not change while the record
// exists. Random nonces are safe for about 2^32 records per key version;
// rotate long before that.
//
// # Records
//
// A [Record] carries the key version, the nonce and the ciphertext (GCM tag
// included). Its text form, which a TEXT column holds through the
// database/sql Valuer and Scanner methods, is
//
//	v<version>.<nonce>.<ciphertext>
//
// with the version in decimal and nonce and ciphertext in unpadded base64url,
// for example "v3.q1Sx0Ul5p1n1b0Qm.Zm9v...". The encoding is canonical:
// [ParseRecord] accepts exactly what [Record.Encode] produces.
//
// # Keys
//
// A [Keyring] holds 256-bit keys by version (1 and up); it encrypts with the
// highest version and decrypts with any. Keys come from one of:
//
//   - a directory ([LoadDir]), the embedded default: one file per version,
//     named <version>.key, holding the base64 key. The directory must be
//     mode 0700 and the files 0600 or stricter, or loading fails with
//     [ErrInsecurePermissions]. An empty or missing directory gets version 1
//     generated. [Keyring.Rotate] adds a file; files are created with a
//     hard link that never overwrites, so two processes rotating at once
//     get two versions, and no key is ever lost.
//   - an environment value ([ParseKeys]), conventionally in [EnvKeys]:
//     comma-separated "version:base64key" entries, e.g. "1:AAAA...,2:BBBB...".
//     Such a ring cannot rotate; add a version to the value and restart.
//
// Rotation: call [Keyring.Rotate] (or add a version), restart or let the
// services pick the new file up, then pass every record through
// [Keyring.Reencrypt]. A directory-backed ring looks for new files when it
// meets a record of a version newer than it knows, so services keep reading
// records that a rotation command already re-encrypted.
//
// Errors never contain key material, plaintext or ciphertext, and a
// [Keyring] prints as its versions only, whatever the fmt verb or slog
// handler.
package vault
