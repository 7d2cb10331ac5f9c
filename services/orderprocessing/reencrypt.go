package orderprocessing

import (
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
)

// Sealed lists the columns OrderProcessing keeps sealed with the vault, for
// the operator's vault commands (tokenrelay vault reencrypt): the
// confirmation tokens stored with each order's steps, sealed under the
// record id the app gives them. Re-encrypting them is safe while the
// service runs: each row is rewritten in a short transaction of its own and
// only if it still holds the ciphertext that was read, so a record the
// service rewrote or erased meanwhile stays as the service left it (see
// vaultsql.Columns.Reencrypt).
var Sealed = adapters.SealedColumns(app.TokenRecordID)
