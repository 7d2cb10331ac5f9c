package embedded

import (
	"context"

	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
)

// WithSeedGate returns cfg whose demo seeding first calls gate with the
// public URL: a test holds the seeding until it has probed the system.
func WithSeedGate(cfg Config, gate func(url string)) Config {
	cfg.beforeSeed = gate
	return cfg
}

// InternalURL is the internal listener's base URL: service name is served
// under /<name>/, as OrderProcessing calls the domains, without the
// gateway.
func InternalURL(s *System) string { return s.internal }

// WithDatabases returns cfg whose services open their databases with open
// (by service name, "payments-processor" included) instead of SQLite files.
func WithDatabases(cfg Config, open func(ctx context.Context, name string) (*sqldb.DB, error)) Config {
	cfg.openDB = open
	return cfg
}
