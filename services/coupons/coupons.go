// Package coupons is the Coupons domain service: campaigns and the coupons
// granted to users, `coupons:redeem` confirmation tokens, and their exercise
// and compensation for OrderProcessing. This package is its public face: a
// Config and New; the rules, store and handlers live under internal/.
//
// Rules: a campaign takes a fixed amount or a percentage (rounded down) off
// a checkout in its currency, above an optional minimum spend, inside its
// validity window [valid_from, valid_until); each user holds at most one
// coupon of a campaign and redeems it once. The discount never exceeds the
// checkout total. Redemption is a conditional update in the same transaction
// as the exercise record keyed by the token's jti, so a coupon redeems once
// whatever the concurrency; compensation makes it available again.
package coupons

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/app"
	"github.com/tokenrelay/tokenrelay/services/coupons/internal/ports"
)

// Name is the service's issuer name (iss of its confirmation tokens), its
// workload name, the audience of the checkout and workload tokens it
// accepts, and its capability namespace.
const Name = "coupons"

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

// Service is a running Coupons service.
type Service struct {
	*capability.Base
	server *ports.Server
}

// New builds the service: migrates the store and wires the use cases.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Vault == nil || cfg.Logger == nil {
		return nil, errors.New("coupons: incomplete Config")
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

// Register mounts CouponsService and CapabilityService on mux, behind the
// authentication interceptor (every RPC needs a transaction token;
// CapabilityService also a workload token from OrderProcessing), followed by
// opts' interceptors; and its JWKS at /.well-known/jwks.json and health at
// /healthz.
func (s *Service) Register(mux *http.ServeMux, opts ...connect.HandlerOption) {
	s.Mount(mux, s.server, s.server.Error, func(o ...connect.HandlerOption) (string, http.Handler) {
		return couponsv1connect.NewCouponsServiceHandler(s.server, o...)
	}, opts...)
}
