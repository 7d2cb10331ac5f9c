package adapters

import "github.com/tokenrelay/tokenrelay/sdk/go/vault/vaultsql"

// Sealed are the columns of Identity that hold vault records: the
// Login and Refresh results kept for the retry window, sealed under
// "sessions/<id>" and "refresh_tokens/<hash>" (the record ids of app.Login
// and app.Refresh; a record sealed under another id would not decrypt, which
// the tests through the service catch). Empty values are no record. A new
// sealed column must be added here, or key rotation leaves it behind.
var Sealed = vaultsql.Columns{
	{
		Table: "sessions", Name: "sealed_login", Key: []string{"id"},
		RecordID: func(k []string) string { return "sessions/" + k[0] },
	},
	{
		Table: "refresh_tokens", Name: "sealed_result", Key: []string{"hash"},
		RecordID: func(k []string) string { return "refresh_tokens/" + k[0] },
	},
}
