// Package points is the Points domain service: a loyalty ledger per user,
// `points:spend` confirmation tokens, and their exercise and compensation for
// OrderProcessing. This package is its public face: a Config and New; the
// rules, store and handlers live under internal/.
//
// Rules: one point is worth one minor unit of the checkout's currency; a
// confirmation never asks for more than the balance or the checkout total;
// the balance is derived from an append-only ledger and can never go
// negative (a conditional update and a CHECK constraint, in the same
// transaction as the ledger entry and the exercise record keyed by the
// token's jti).
package points

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/points/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/points/internal/app"
	"github.com/tokenrelay/tokenrelay/services/points/internal/ports"
)

// Name is the service's issuer name (iss of its confirmation tokens), its
// workload name, the audience of the checkout and workload tokens it
// accepts, and its capability namespace.
const Name = "points"

// Config configures the service. Every field is required.
type Config struct {
	// DB is the service's database (SQLite or PostgreSQL); New migrates it.
	DB *sqldb.DB
	// Vault encrypts the confirmation tokens it keeps for idempotent retries.
	Vault *vault.Keyring
	// Logger receives the service's logs; wrap its handler with
	// authn.NewLogHandler so lines carry the txn.
	Logger *slog.Logger
	// Trust is the service's own key ring and the issuers it trusts.
	capability.Trust
}

// Service is a running Points service.
type Service struct {
	*capability.Base
	server *ports.Server
}

// New builds the service: migrates the store and wires the use cases.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Vault == nil || cfg.Logger == nil {
		return nil, errors.New("points: incomplete Config")
	}
	base, err := capability.NewBase(Name, cfg.Trust, cfg.DB)
	if err != nil {
		return nil, err
	}
	store, err := adapters.NewStore(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	a := app.New(store, base.Issuer, capability.VaultSealer{Keyring: cfg.Vault}, nil)
	return &Service{Base: base, server: ports.NewServer(a, base.Verifier, cfg.Logger)}, nil
}

// Register mounts PointsService and CapabilityService on mux, behind the
// authentication interceptor (every RPC needs a transaction token;
// CapabilityService also a workload token from OrderProcessing), followed by
// opts' interceptors; and its JWKS at /.well-known/jwks.json and health at
// /healthz.
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) {
	s.Mount(mux, s.server, s.server.Error, func(o ...connect.HandlerOption) (string, http.Handler) {
		return pointsv1connect.NewPointsServiceHandler(s.server, o...)
	}, opts...)
}
