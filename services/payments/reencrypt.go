package payments

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/adapters"
)

// Reencrypt moves every record Payments keeps sealed with the vault (the
// confirmation tokens it keeps for idempotent retries of ConfirmPayment; the
// processor database, Config.ProcessorDB, holds nothing sealed) to vk's
// current key version (after vault.Keyring.Rotate) and returns how many rows
// it rewrote. db is the service's database, already migrated by New.
//
// It is safe while the service runs: each row is rewritten in a short
// transaction of its own and only if it still holds the ciphertext that was
// read (a compare-and-swap), so a record the service rewrote or erased
// meanwhile stays as the service left it. Records already under the current
// version are authenticated and left alone, so a second run rewrites
// nothing unless something was sealed under an older version meanwhile (a
// service still running with the old key set does that until it restarts).
// A record that does not decrypt is named in the error by table and record
// id, never by content, and the other records still move; the count is
// then still meaningful.
func Reencrypt(ctx context.Context, db *sqldb.DB, vk *vault.Keyring) (int, error) {
	return adapters.Reencrypt(ctx, db, vk)
}

// SealedVersions counts the records the service keeps sealed in db by the
// vault key version that sealed them, reading only their version prefixes
// (no key needed). Version 0 counts values that are not vault records.
func SealedVersions(ctx context.Context, db *sqldb.DB) (map[uint32]int, error) {
	return adapters.SealedVersions(ctx, db)
}
