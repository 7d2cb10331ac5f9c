// Package app holds OrderProcessing's use cases: price a cart into a
// checkout and sign its checkout token, verify confirmation tokens by their
// envelope only and place the order, read, list and watch orders. The saga
// that relays the tokens lives in package saga; app hands it each new order.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/money"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// Caller is the verified principal of a request.
type Caller struct {
	UserID string
	Admin  bool
	// Txn is the request's transaction id, and TraceParent its W3C trace
	// context ("" when none): PlaceOrder records both with the order.
	Txn, TraceParent string
}

// Envelope verifies one confirmation token's envelope (signature through its
// issuer's keys, typ, aud, exp, the issuer's namespace) and returns what it
// says. Errors are token sentinels.
type Envelope func(ctx context.Context, raw string) (domain.Confirmation, error)

// CheckoutSigner signs a checkout token for c and says what it issued.
type CheckoutSigner func(ctx context.Context, c domain.Checkout) (string, domain.IssuedToken, error)

// Starter starts (or resumes) the saga of an order in the background.
type Starter interface {
	Start(orderID string)
}

// Seen is the fast path of the replay guard (replay.Guard): whether a
// token's (iss, jti) is known to be consumed, without a database read. The
// store's PlaceOrder consumes for good, in the order's transaction.
type Seen interface {
	Seen(iss, jti string) bool
}

// Config wires the use cases.
type Config struct {
	Repo     domain.Repository
	Envelope Envelope
	Sign     CheckoutSigner
	Sealer   capability.Sealer
	Guard    Seen
	Routes   domain.Routes
	Saga     Starter
	Watch    *Watcher
	// CheckoutTTL is how long a checkout stays open; at most one hour, the
	// checkout token's maximum lifetime.
	CheckoutTTL time.Duration
	Now         func() time.Time
	// Refusals records in the audit trail each confirmation token
	// PlaceOrder refuses (the tokens it accepts are recorded by Repo, in
	// the order's transaction).
	Refusals Refusals
	// Logger logs each order placed ("order placed", at INFO, with the
	// request's context, so with its txn when the handler adds it:
	// authn.NewLogHandler). Default: discard.
	Logger *slog.Logger
}

// Refusals is the audit trail's record of refused tokens.
type Refusals interface {
	// Refused records that user presented r's tokens for checkoutID and
	// they were refused, each in a transaction of its own, within the
	// user's budget of recorded refusals (beyond it, only counted: not an
	// error).
	Refused(ctx context.Context, userID, checkoutID string, r *domain.RefusedToken) error
}

// Service runs the use cases.
type Service struct{ cfg Config }

// New returns the use cases.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckoutTTL <= 0 || cfg.CheckoutTTL > time.Hour {
		cfg.CheckoutTTL = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// Products returns the catalog.
func (s *Service) Products(ctx context.Context) (map[string]domain.Product, error) {
	return s.cfg.Repo.Products(ctx)
}

// StartCheckout prices a cart and opens a checkout for the caller. A retry
// with the same key returns the same checkout (with a freshly signed token
// for it: checkout tokens are credentials for the checkout, not one-time).
func (s *Service) StartCheckout(ctx context.Context, c Caller, items []domain.CartItem, key string) (domain.Checkout, string, error) {
	catalog, err := s.cfg.Repo.Products(ctx)
	if err != nil {
		return domain.Checkout{}, "", err
	}
	lines, total, err := domain.Price(items, catalog)
	if err != nil {
		return domain.Checkout{}, "", err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	co := domain.Checkout{
		ID: ids.New("op"), UserID: c.UserID, Lines: lines, Total: total, Status: domain.CheckoutOpen,
		IdempotencyKey: key, CreatedAt: now, ExpiresAt: now.Add(s.cfg.CheckoutTTL),
	}
	// Signed before it is stored, so that the checkout and its token's
	// issued event commit together; the token leaves only with the stored
	// checkout.
	tok, issued, err := s.cfg.Sign(ctx, co)
	if err != nil {
		return domain.Checkout{}, "", fmt.Errorf("sign checkout token: %w", err)
	}
	co, created, err := s.cfg.Repo.CreateCheckout(ctx, co, issued)
	if err != nil {
		return domain.Checkout{}, "", err
	}
	if created {
		return co, tok, nil
	}
	if !sameLines(co.Lines, lines) {
		return domain.Checkout{}, "", domain.ErrIdempotencyConflict
	}
	if co.StatusAt(now) != domain.CheckoutOpen {
		return co, "", nil // a retry after the checkout closed: nothing left to sign
	}
	if tok, issued, err = s.cfg.Sign(ctx, co); err != nil {
		return domain.Checkout{}, "", fmt.Errorf("sign checkout token: %w", err)
	}
	if err := s.cfg.Repo.CheckoutTokenIssued(ctx, co, issued); err != nil {
		return domain.Checkout{}, "", err
	}
	return co, tok, nil
}

func sameLines(a, b []domain.Line) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// visible returns the checkout if the caller may see it; otherwise
// ErrNotFound, whether it exists or not.
func (s *Service) checkout(ctx context.Context, c Caller, id string) (domain.Checkout, error) {
	co, err := s.cfg.Repo.Checkout(ctx, id)
	if err != nil {
		return domain.Checkout{}, err
	}
	if co.UserID != c.UserID && !c.Admin {
		return domain.Checkout{}, domain.ErrNotFound
	}
	return co, nil
}

// CancelCheckout cancels one of the caller's open checkouts.
func (s *Service) CancelCheckout(ctx context.Context, c Caller, id string) (domain.Checkout, error) {
	if _, err := s.checkout(ctx, c, id); err != nil {
		return domain.Checkout{}, err
	}
	return s.cfg.Repo.CancelCheckout(ctx, id, s.cfg.Now())
}

// PlaceOrder verifies the confirmation tokens of one of the caller's
// checkouts by their envelope, checks that they settle the total exactly,
// and stores the order with its sealed tokens and consumed jtis in one
// transaction; then the saga starts. The same key returns the same order.
// A new order is logged ("order placed": order, checkout, user, total and
// steps, never a token) with ctx, and so with its txn, which the order
// keeps for the saga's calls and log lines.
func (s *Service) PlaceOrder(ctx context.Context, c Caller, checkoutID string, raws []string, key string) (domain.Order, error) {
	o, err := s.placeOrder(ctx, c, checkoutID, raws, key)
	if errors.Is(err, token.ErrReplayed) || errors.Is(err, domain.ErrCheckoutClosed) {
		// A concurrent retry with the same key may have placed the order
		// after this request read the checkout: its tokens are then used
		// and the checkout closed, by this very request's twin. The key
		// decides, as for a retry that came later.
		if co, cerr := s.checkout(ctx, c, checkoutID); cerr == nil && co.Status == domain.CheckoutPlaced {
			if prev, kerr := s.orderByKey(ctx, co, key); kerr == nil {
				return prev, nil
			}
		}
	}
	if r, ok := errors.AsType[*domain.RefusedToken](err); ok {
		if aerr := s.cfg.Refusals.Refused(ctx, c.UserID, checkoutID, r); aerr != nil {
			// The refusal stands; only its record is missing.
			s.cfg.Logger.ErrorContext(ctx, "audit: record refusal", "checkout", checkoutID, "check", r.Check, "error", aerr)
		}
	}
	return o, err
}

func (s *Service) placeOrder(ctx context.Context, c Caller, checkoutID string, raws []string, key string) (domain.Order, error) {
	if key == "" {
		return domain.Order{}, fmt.Errorf("%w: an idempotency key is required", domain.ErrInvalidArgument)
	}
	co, err := s.checkout(ctx, c, checkoutID)
	if err != nil {
		return domain.Order{}, err
	}
	if co.UserID != c.UserID { // an admin may read it, never pay for it
		return domain.Order{}, domain.ErrNotFound
	}
	if co.Status == domain.CheckoutPlaced {
		// Possibly a retry: the key decides.
		if prev, err := s.orderByKey(ctx, co, key); err == nil || !errors.Is(err, domain.ErrNotFound) {
			return prev, err
		}
	}
	if len(raws) == 0 || len(raws) > domain.MaxTokens {
		return domain.Order{}, fmt.Errorf("%w: 1 to %d confirmation tokens", domain.ErrInvalidArgument, domain.MaxTokens)
	}
	confs := make([]domain.Confirmation, len(raws))
	for i, raw := range raws {
		conf, err := s.cfg.Envelope(ctx, raw)
		if err != nil {
			err = fmt.Errorf("confirmation token %d: %w", i+1, err)
			if check := token.Reason(err); check != "" {
				err = &domain.RefusedToken{Check: check, Err: err}
			}
			return domain.Order{}, err
		}
		// The fast path: a replay is refused before the database is touched.
		if s.cfg.Guard.Seen(conf.Issuer, conf.JTI) {
			return domain.Order{}, &domain.RefusedToken{Tokens: []domain.TokenID{{Issuer: conf.Issuer, JTI: conf.JTI}}, Check: token.Reason(token.ErrReplayed),
				Err: fmt.Errorf("confirmation token %d: %w", i+1, token.ErrReplayed)}
		}
		confs[i] = conf
	}
	steps, err := domain.Plan(co, c.UserID, confs, s.cfg.Routes)
	if err != nil {
		return domain.Order{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	o := domain.Order{
		ID: ids.New("ord"), CheckoutID: co.ID, UserID: c.UserID, Lines: co.Lines, Total: co.Total,
		Status: domain.OrderPending, IdempotencyKey: key, Version: 1, CreatedAt: now, UpdatedAt: now,
		Txn: c.Txn, TraceParent: c.TraceParent,
	}
	for i := range steps {
		raw := confs[indexOf(confs, steps[i].JTI)].Raw
		if steps[i].SealedToken, err = s.cfg.Sealer.Seal(TokenRecordID(o.ID, steps[i].Capability), raw); err != nil {
			return domain.Order{}, fmt.Errorf("seal token: %w", err)
		}
	}
	o.Steps = steps
	stored, created, err := s.cfg.Repo.PlaceOrder(ctx, o, now)
	if err != nil {
		return domain.Order{}, err
	}
	if !created && stored.CheckoutID != checkoutID {
		return domain.Order{}, domain.ErrIdempotencyConflict
	}
	if created {
		s.cfg.Logger.InfoContext(ctx, "order placed", "order", stored.ID, "checkout", stored.CheckoutID,
			"user", stored.UserID, "total", stored.Total.String(), "steps", len(stored.Steps))
	}
	s.cfg.Saga.Start(stored.ID)
	return stored, nil
}

func (s *Service) orderByKey(ctx context.Context, co domain.Checkout, key string) (domain.Order, error) {
	o, err := s.cfg.Repo.Order(ctx, co.OrderID)
	if err != nil {
		return domain.Order{}, err
	}
	if o.IdempotencyKey != key {
		return domain.Order{}, fmt.Errorf("%w: an order was placed for it", domain.ErrCheckoutClosed)
	}
	return o, nil
}

func indexOf(confs []domain.Confirmation, jti string) int {
	for i, c := range confs {
		if c.JTI == jti {
			return i
		}
	}
	return -1
}

// TokenRecordID is the vault record id of an order's token for a
// capability: the associated data that binds the ciphertext to its row.
func TokenRecordID(orderID, capability string) string {
	return "orders/" + orderID + "/tokens/" + capability
}

// Order returns an order the caller may see.
func (s *Service) Order(ctx context.Context, c Caller, id string) (domain.Order, error) {
	o, err := s.cfg.Repo.Order(ctx, id)
	if err != nil {
		return domain.Order{}, err
	}
	if o.UserID != c.UserID && !c.Admin {
		return domain.Order{}, domain.ErrNotFound
	}
	return o, nil
}

// Orders lists the caller's orders (an admin may name another user): a page
// of at most size, after the order id cursor; next is the cursor of the next
// page, "" on the last.
func (s *Service) Orders(ctx context.Context, c Caller, userID, cursor string, size int) (orders []domain.Order, next string, err error) {
	switch {
	case userID == "":
		userID = c.UserID
	case userID != c.UserID && !c.Admin:
		return nil, "", fmt.Errorf("%w: only admins list other users' orders", domain.ErrNotFound)
	}
	if size == 0 {
		size = 20
	}
	if size < 1 || size > 100 {
		return nil, "", fmt.Errorf("%w: page_size must be 1 to 100", domain.ErrInvalidArgument)
	}
	orders, err = s.cfg.Repo.Orders(ctx, userID, cursor, size+1)
	if err != nil {
		return nil, "", err
	}
	if len(orders) > size {
		orders, next = orders[:size], orders[size-1].ID
	}
	return orders, next, nil
}

// Watch calls send with the order's current state, then with every new
// version, until the order is final, ctx ends or send fails. The caller
// holds one of its watcher slots until then (Watcher.Admit): beyond the
// caps, domain.ErrTooManyWatchers and nothing is read.
func (s *Service) Watch(ctx context.Context, c Caller, id string, send func(domain.Order) error) error {
	release, err := s.cfg.Watch.Admit(c.UserID)
	if err != nil {
		return err
	}
	defer release()
	// Subscribe before the first read, so that a change published between
	// the read and the subscription still wakes this watcher at once.
	changed, stop := s.cfg.Watch.Subscribe(id)
	defer stop()
	o, err := s.Order(ctx, c, id)
	if err != nil {
		return err
	}
	if err := send(o); err != nil {
		return err
	}
	for !o.Status.Final() {
		next, pushed, err := s.cfg.Watch.Wait(ctx, changed)
		if err != nil {
			return err
		}
		if !pushed { // no news in this process: another replica may run it
			if next, err = s.cfg.Repo.Order(ctx, id); err != nil {
				return err
			}
		}
		if next.Version <= o.Version {
			continue
		}
		o = next
		if err := send(o); err != nil {
			return err
		}
	}
	return nil
}

// EnvelopeVerifier returns the Envelope of a token verifier that trusts
// every domain as an issuer of token.Confirmation in its own namespace.
func EnvelopeVerifier(v *token.Verifier) Envelope {
	return func(ctx context.Context, raw string) (domain.Confirmation, error) {
		c, err := token.Verify(ctx, v, token.Confirmation, raw)
		if err != nil {
			return domain.Confirmation{}, err
		}
		return domain.Confirmation{
			Raw: raw, Issuer: c.Issuer, JTI: c.ID, Subject: c.Subject, CheckoutID: c.OrderProcessingID,
			Capabilities: c.Capabilities, ExpiresAt: c.ExpiresAt,
			Settlement: money.Money{AmountMinor: c.Settlement.AmountMinor, Currency: c.Settlement.Currency},
		}, nil
	}
}
