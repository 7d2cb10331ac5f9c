package adapters

import "github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"

// SealedColumns are the columns of OrderProcessing that hold vault records:
// the confirmation tokens of each order step, sealed under
// recordID(order_id, capability) (app.TokenRecordID). A new sealed column
// must be added here, or key rotation leaves it behind.
func SealedColumns(recordID func(orderID, capability string) string) vaultsql.Columns {
	return vaultsql.Columns{{
		Table: "steps", Name: "sealed_token", Key: []string{"order_id", "capability"},
		RecordID: func(k []string) string { return recordID(k[0], k[1]) },
	}}
}
