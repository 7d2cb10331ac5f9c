package adapters

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
)

// Purge deletes the confirmations and exercise records of tokens that
// expired before before and whose exercise, if any, is final and last
// changed before before, each recorded as purged in the audit trail
// (capabilitysql.Ledger.Purge, capabilitysql.Purge which says why that is safe
// and what a late Compensate of a purged token gets). The caller passes
// before = now - retention. Safe from several replicas at once.
func (s *Store) Purge(ctx context.Context, before time.Time) (capabilitysql.Purged, error) {
	p, err := s.ledger.Purge(ctx, s.db, before)
	if err != nil {
		return p, fmt.Errorf("payments: %w", err)
	}
	return p, nil
}

// PurgeAudit deletes the audit events that happened before before
// (audit.Log.Purge: the rest of the chain stays verifiable).
func (s *Store) PurgeAudit(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.ledger.PurgeTrail(ctx, before)
	if err != nil {
		return n, fmt.Errorf("%s: purge audit: %w", Issuer, err)
	}
	return n, nil
}
