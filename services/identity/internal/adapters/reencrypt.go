package adapters

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"
)

// sealedColumns are the columns of Identity that hold vault records: the
// Login and Refresh results kept for the retry window, sealed under
// "sessions/<id>" and "refresh_tokens/<hash>" (the record ids of app.Login
// and app.Refresh; a record sealed under another id would not decrypt, which
// the tests through the service catch). Empty values are no record. A new
// sealed column must be added here, or key rotation leaves it behind.
var sealedColumns = []vaultsql.Column{
	{
		Table: "sessions", Name: "sealed_login", Key: []string{"id"},
		RecordID: func(k []string) string { return "sessions/" + k[0] },
	},
	{
		Table: "refresh_tokens", Name: "sealed_result", Key: []string{"hash"},
		RecordID: func(k []string) string { return "refresh_tokens/" + k[0] },
	},
}

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
