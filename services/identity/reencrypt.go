package identity

import "github.com/tokenrelay/tokenrelay/services/identity/internal/adapters"

// Sealed lists the columns Identity keeps sealed with the vault, for the
// operator's vault commands (tokenrelay vault reencrypt): the Login and
// Refresh results kept for the 60-second retry window. Re-encrypting them
// is safe while the service runs, and a record that does not decrypt is
// reported by table and record id, never by content (see
// vaultsql.Columns.Reencrypt).
var Sealed = adapters.Sealed
