package adapters

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"
)

// sealedColumns are the columns of Coupons that hold vault records: the
// confirmation tokens kept for idempotent retries of Confirm, sealed under
// their jti as record id (see app.Confirm). A new sealed column must be
// added here, or key rotation leaves it behind.
var sealedColumns = []vaultsql.Column{{
	Table: "confirmations", Name: "sealed_token", Key: []string{"jti"},
	RecordID: func(k []string) string { return k[0] },
}}

// Reencrypt moves every sealed record of the store in db to vk's current
// key version and returns how many rows it rewrote; see vaultsql.Reencrypt.
func Reencrypt(ctx context.Context, db *sqldb.DB, vk *vault.Keyring) (int, error) {
	return vaultsql.Reencrypt(ctx, db, vk, sealedColumns)
}

// SealedVersions counts the sealed records of the store in db by key
// version, reading only their version prefixes.
func SealedVersions(ctx context.Context, db *sqldb.DB) (map[uint32]int, error) {
	return vaultsql.Versions(ctx, db, sealedColumns)
}
