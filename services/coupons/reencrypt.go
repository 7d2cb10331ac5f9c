package coupons

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Reencrypt moves the confirmation tokens Coupons keeps sealed for idempotent
// retries of ConfirmCoupon to vk's current key version and returns how
// many rows it rewrote; db is the service's database, already migrated by
// New. See capabilitysql.Reencrypt, which says why it is safe while the
// service runs. Those tokens are the service's only sealed column: a new one
// must be added here, or key rotation leaves it behind.
func Reencrypt(ctx context.Context, db *sqldb.DB, vk *vault.Keyring) (int, error) {
	return capabilitysql.Reencrypt(ctx, db, vk)
}

// SealedVersions counts those tokens in db by the vault key version that
// sealed them; see capabilitysql.SealedVersions.
func SealedVersions(ctx context.Context, db *sqldb.DB) (map[uint32]int, error) {
	return capabilitysql.SealedVersions(ctx, db)
}
