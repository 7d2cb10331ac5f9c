package adapters

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"
)

// sealedColumns are the columns of OrderProcessing that hold vault records:
// the confirmation tokens of each order step, sealed under
// recordID(order_id, capability) (app.TokenRecordID). A new sealed column
// must be added here, or key rotation leaves it behind.
func sealedColumns(recordID func(orderID, capability string) string) []vaultsql.Column {
	return []vaultsql.Column{{
		Table: "steps", Name: "sealed_token", Key: []string{"order_id", "capability"},
		RecordID: func(k []string) string { return recordID(k[0], k[1]) },
	}}
}

// Reencrypt moves every sealed record of the store in db to vk's current
// key version and returns how many rows it rewrote; recordID names the
// record of an order step as the app seals it. See vaultsql.Reencrypt.
func Reencrypt(ctx context.Context, db *sqldb.DB, vk *vault.Keyring, recordID func(orderID, capability string) string) (int, error) {
	return vaultsql.Reencrypt(ctx, db, vk, sealedColumns(recordID))
}

// SealedVersions counts the sealed records of the store in db by key
// version, reading only their version prefixes.
func SealedVersions(ctx context.Context, db *sqldb.DB) (map[uint32]int, error) {
	return vaultsql.Versions(ctx, db, sealedColumns(nil))
}
