package capabilityrpc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/sealed"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
)

// Config configures a domain service: what every domain's public face
// needs. Every field is required.
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
	// SealConstraints seals the constraints of the confirmation tokens the
	// domain issues, for the domain alone (package sealed), with keys
	// derived from Vault for the domain's name. Whatever it says, the
	// domain opens sealed constraints it meets at Exercise and Compensate,
	// so that turning it on or off leaves no issued token unusable.
	// Optional; default false (Payments turns it on by default).
	SealConstraints bool
	// SealAlgorithm is the JWE key management of sealed constraints:
	// sealed.Dir ("dir", the default when empty) or sealed.A256KW.
	SealAlgorithm string
}

// Wiring is what a domain's use cases and handlers are built from: the
// issuer of its confirmation tokens and the sealer of the ones it keeps
// (for its app), the verifier of checkout tokens and its logger (for its
// ports).
type Wiring struct {
	Issuer    capability.Issuer
	Sealer    capability.Sealer
	Checkouts *Checkouts
	Logger    *slog.Logger
}

// Handlers is a domain's ports: capability.Domain, under CapabilityService,
// and the domain's one error mapping.
type Handlers interface {
	capability.Domain
	Error(ctx context.Context, err error) *connect.Error
}

// Face is what every domain's public face offers a process: Register, JWKS
// and Close. A face embeds it, by value in an unexported field, and so keeps
// the verifier and issuer of its [Server] to itself.
type Face struct {
	rpc   *Server
	mount func(mux *http.ServeMux, opts ...connect.HandlerOption)
}

// NewFace builds the face of domain name: it checks cfg (an incomplete one
// is "<name>: incomplete Config"), builds the domain's [Server] (its health
// check pings cfg.DB), and has build migrate the domain's store and wire its
// use cases and handlers. own mounts the domain's own service over them (a
// generated New...ServiceHandler). On failure nothing is left open.
func NewFace[H Handlers](ctx context.Context, name string, cfg Config,
	build func(ctx context.Context, w Wiring) (H, error),
	own func(h H, opts ...connect.HandlerOption) (string, http.Handler)) (Face, error) {
	if cfg.DB == nil || cfg.Vault == nil || cfg.Logger == nil {
		return Face{}, fmt.Errorf("%s: incomplete Config", name)
	}
	sl, err := sealed.New(cfg.Vault, name, cfg.SealAlgorithm)
	if err != nil {
		return Face{}, fmt.Errorf("%s: %w", name, err)
	}
	// The audit tables are migrated by the domain's store (build), which
	// appends to them; the Server only reads them.
	rpc, err := New(name, cfg.Trust, cfg.DB.SQL().PingContext, cfg.Logger, audit.New(cfg.DB))
	if err != nil {
		return Face{}, err
	}
	rpc.Seal(sl, cfg.SealConstraints)
	h, err := build(ctx, Wiring{
		Issuer: rpc.Issuer(), Sealer: capability.VaultSealer{Keyring: cfg.Vault},
		Checkouts: rpc.Checkouts(), Logger: cfg.Logger,
	})
	if err != nil {
		rpc.Close()
		return Face{}, err
	}
	return Face{rpc: rpc, mount: func(mux *http.ServeMux, opts ...connect.HandlerOption) {
		rpc.Register(mux, func(o ...connect.HandlerOption) (string, http.Handler) { return own(h, o...) }, h, h.Error, opts...)
	}}, nil
}

// Register mounts the domain's own service and CapabilityService on mux,
// behind the authentication interceptor (every RPC of the domain's service
// needs a transaction token; CapabilityService a workload token from
// OrderProcessing), followed by opts' interceptors; and its JWKS at
// /.well-known/jwks.json and health at /healthz. See [Server.Register].
func (f Face) Register(mux *http.ServeMux, opts ...connect.HandlerOption) { f.mount(mux, opts...) }

// JWKS serves the service's public keys, as Register does at
// /.well-known/jwks.json.
func (f Face) JWKS() http.Handler { return f.rpc.JWKS() }

// Close releases the verifier's caches. It closes no database.
func (f Face) Close() { f.rpc.Close() }

// Errors returns a domain's error mapping: the sentinels every domain
// shares ([Codes]), then the domain's own.
func Errors(log *slog.Logger, own ...rpcerr.Code) *rpcerr.Mapper {
	return rpcerr.New(log, append(Codes(), own...)...)
}
