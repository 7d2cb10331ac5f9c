package identity

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/identity/internal/adapters"
)

// Reencrypt moves the records Identity keeps sealed with the vault (the
// Login and Refresh results kept for the 60-second retry window) to vk's
// current key version and returns how many rows it rewrote; db is the
// service's database, already migrated by New. See vaultsql.Reencrypt, which
// says why it is safe while the service runs and how a record that does not
// decrypt is reported (by table and record id, never by content).
func Reencrypt(ctx context.Context, db *sqldb.DB, vk *vault.Keyring) (int, error) {
	return adapters.Reencrypt(ctx, db, vk)
}

// SealedVersions counts those records in db by the vault key version that
// sealed them, reading only their version prefixes (no key needed); version
// 0 counts values that are not vault records.
func SealedVersions(ctx context.Context, db *sqldb.DB) (map[uint32]int, error) {
	return adapters.SealedVersions(ctx, db)
}
