// Package payments is the Payments domain service: stored payment methods,
// authorization holds behind `payments:capture` confirmation tokens, and
// their exercise and compensation for OrderProcessing. This package is its
// public face: a Config and New; the rules, store, processor and handlers
// live under internal/.
// The face offers only what a process calls (New, Register, JWKS, Purge, Close,
// and Sealed, its sealed columns, for the operator); the verifier and
// issuer stay unexported behind capabilityrpc.Face.
//
// Rules: of a card, only its brand and last four digits (with expiry and
// label) are stored or returned; the full number (PAN) goes to the processor
// at AddPaymentMethod, which only admins may call, and is dropped there. A
// payment never holds more than the checkout total, in the checkout's
// currency, nor on another user's card. The money moves in three steps:
// ConfirmPayment places an authorization hold for the amount and signs the
// token; Exercise captures that hold, exactly once, in the same transaction
// as the exercise record keyed by the token's jti; Compensate voids the hold
// when it was never captured (so that it never will be) and refunds the
// capture otherwise. A processor that does not answer within the request's
// deadline is Unavailable, and a retry with the same idempotency key places
// no second hold.
//
// The processor is the built-in simulation, which moves no money and acts by
// test card number:
//
//	card number       ConfirmPayment (hold)      Exercise (capture)
//	4242424242424242  hold placed                captured
//	4000000000000002  FailedPrecondition         –
//	                  (declined)
//	4000000000000341  hold placed                FailedPrecondition, every
//	                                             time; Compensate voids it
//	4000000000009995  Unavailable when the       –
//	                  request's deadline passes
//	any other valid   hold placed                captured
//
// Retention: the confirmation and exercise records of a token are kept for
// idempotent retries; [Service.Purge] deletes them once the retention has
// passed since the token expired and its exercise last changed
// (capabilitysql.Purge, which says what a late Compensate of a purged token
// gets). The domain's own records (payment methods) are kept.
//
// A confirmation never exercised holds an authorization on the card; the
// purge does not release it: processors let an authorization lapse on their
// own (typically within 7 days), far sooner than the retention.
package payments

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilityrpc"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitysql"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/adapters"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/app"
	"github.com/tokenrelay/tokenrelay/services/payments/internal/ports"
)

// Name is the service's issuer name (iss of its confirmation tokens), its
// workload name, the audience of the checkout and workload tokens it
// accepts, and its capability namespace.
const Name = "payments"

// Sealed lists the columns Payments keeps sealed with the vault, for the
// operator's vault commands (tokenrelay vault reencrypt): only the
// confirmation tokens kept for idempotent retries of ConfirmPayment
// (capabilitysql.Sealed). A new sealed column must be added here, or key
// rotation leaves it behind.
var Sealed = capabilitysql.Sealed

// Config configures the service. Every field is required.
type Config struct {
	// DB is the service's database (SQLite or PostgreSQL); New migrates it.
	DB *sqldb.DB
	// ProcessorDB is the simulated processor's own database; New migrates
	// it. It must be a handle of its own, not DB: the store calls the
	// processor inside its transactions, which on SQLite hold DB's write
	// lock and on PostgreSQL one of its pool's connections. A second SQLite
	// file, or a second PostgreSQL pool (another schema will do).
	ProcessorDB *sqldb.DB
	// Vault encrypts the confirmation tokens it keeps for idempotent retries.
	Vault *vault.Keyring
	// Logger receives the service's logs; wrap its handler with
	// authn.NewLogHandler so lines carry the txn.
	Logger *slog.Logger
	// Trust is the service's own key ring and the issuers it trusts.
	capability.Trust
	// PlainConstraints turns off the sealing of constraints, which is on
	// by default for Payments: the authorization id of a hold and the hash
	// of its amount travel sealed for Payments alone (package sealed,
	// capabilityrpc.Config.SealConstraints). Optional.
	PlainConstraints bool
	// SealAlgorithm is capabilityrpc.Config.SealAlgorithm. Optional.
	SealAlgorithm string
}

// Service is a running Payments service. It offers what a process needs of
// it: Register its handlers (PaymentsService and CapabilityService), serve
// its JWKS, Close it (see capabilityrpc.Face).
type Service struct {
	face
	store *adapters.Store
}

type face = capabilityrpc.Face

// New builds the service: migrates the store and the simulated processor and
// wires the use cases.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.ProcessorDB == nil || cfg.Vault == nil || cfg.Logger == nil {
		return nil, errors.New("payments: incomplete Config")
	}
	if cfg.ProcessorDB == cfg.DB {
		return nil, errors.New("payments: ProcessorDB must not be the same handle as DB")
	}
	own := capabilityrpc.Config{DB: cfg.DB, Vault: cfg.Vault, Logger: cfg.Logger, Trust: cfg.Trust,
		SealConstraints: !cfg.PlainConstraints, SealAlgorithm: cfg.SealAlgorithm}
	var store *adapters.Store
	f, err := capabilityrpc.NewFace(ctx, Name, own, func(ctx context.Context, w capabilityrpc.Wiring) (*ports.Server, error) {
		var err error
		if store, err = adapters.NewStore(ctx, cfg.DB); err != nil {
			return nil, err
		}
		proc, err := adapters.NewSimProcessor(ctx, cfg.ProcessorDB)
		if err != nil {
			return nil, err
		}
		return ports.NewServer(app.New(store, proc, w.Issuer, w.Sealer, nil), w.Checkouts, w.Logger), nil
	}, func(s *ports.Server, opts ...connect.HandlerOption) (string, http.Handler) {
		return paymentsv1connect.NewPaymentsServiceHandler(s, opts...)
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
