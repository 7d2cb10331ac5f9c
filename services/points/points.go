// Package points is the Points domain service: a loyalty ledger per user,
// `points:spend` confirmation tokens, and their exercise and compensation for
// OrderProcessing. This package is its public face: a Config and New; the
// rules, store and handlers live under internal/.
// The face offers only what a process calls (New, Register, JWKS, Purge, Close,
// and Sealed, its sealed columns, for the operator); the verifier and
// issuer stay unexported behind capabilityrpc.Face.
//
// Rules: one point is worth one minor unit of the checkout's currency; a
// confirmation never asks for more than the balance or the checkout total;
// the balance is derived from an append-only ledger and can never go
// negative (a conditional update and a CHECK constraint, in the same
// transaction as the ledger entry and the exercise record keyed by the
// token's jti).
//
// Retention: the confirmation and exercise records of a token are kept for
// idempotent retries; [Service.Purge] deletes them once the retention has
// passed since the token expired and its exercise last changed
// (capabilitysql.Purge, which says what a late Compensate of a purged token
// gets). The domain's own records (balances and the ledger) are kept.
package points

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/services/points/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/points/internal/app"
	"github.com/tokenrelay/tokenrelay/services/points/internal/ports"
)

// Name is the service's issuer name (iss of its confirmation tokens), its
// workload name, the audience of the checkout and workload tokens it
// accepts, and its capability namespace.
const Name = "points"

// Sealed lists the columns Points keeps sealed with the vault, for the
// operator's vault commands (tokenrelay vault reencrypt): only the
// confirmation tokens kept for idempotent retries of ConfirmPoints
// (capabilitysql.Sealed). A new sealed column must be added here, or key
// rotation leaves it behind.
var Sealed = capabilitysql.Sealed

// Config configures the service: the database, vault, logger and trust
// every domain takes (see capabilityrpc.Config). Every field is required.
type Config = capabilityrpc.Config

// Service is a running Points service. It offers what a process needs of
// it: Register its handlers (PointsService and CapabilityService), serve its
// JWKS, Close it (see capabilityrpc.Face).
type Service struct {
	face
	store *adapters.Store
}

type face = capabilityrpc.Face

// New builds the service: migrates the store and wires the use cases.
func New(ctx context.Context, cfg Config) (*Service, error) {
	var store *adapters.Store
	f, err := capabilityrpc.NewFace(ctx, Name, cfg, func(ctx context.Context, w capabilityrpc.Wiring) (*ports.Server, error) {
		var err error
		if store, err = adapters.NewStore(ctx, cfg.DB); err != nil {
			return nil, err
		}
		return ports.NewServer(app.New(store, w.Issuer, w.Sealer, nil), w.Checkouts, w.Logger), nil
	}, func(s *ports.Server, opts ...connect.HandlerOption) (string, http.Handler) {
		return pointsv1connect.NewPointsServiceHandler(s, opts...)
	})
	if err != nil {
		return nil, err
	}
	return &Service{face: f, store: store}, nil
}

// Purge deletes the confirmations and exercise records of the tokens past
// retention at now (see capabilitysql.Purge), each recorded as purged in the
// audit trail, and the audit events older than audit.RetentionFactor times
// the retention; a retention of 0 keeps them all.
// It returns the rows deleted by table, also when it fails part way. The
// purge task of the process runs it every -purge-every; replicas may run
// it at once.
func (s *Service) Purge(ctx context.Context, now time.Time, retention time.Duration) (map[string]int64, error) {
	if retention <= 0 {
		return nil, nil
	}
	p, err := s.store.Purge(ctx, now.Add(-retention))
	rows := p.Rows()
	n, aerr := s.store.PurgeAudit(ctx, now.Add(-audit.RetentionFactor*retention))
	rows["audit_events"] = n
	return rows, errors.Join(err, aerr)
}
