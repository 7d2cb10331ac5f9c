// Package saga relays an order's confirmation tokens to their issuers and
// compensates when a step fails: the durable saga of OrderProcessing.
//
// # States
//
// An order is PENDING when stored, IN_PROGRESS while its stages run (stages
// in ascending order; the steps of one stage concurrently; the routing table
// puts the payment capture, the pivot, in the last stage), COMPENSATING after
// a step failed, and ends COMPLETED (every step APPLIED), FAILED (every step
// COMPENSATED) or NEEDS_OPERATOR (an issuer refused for good to compensate a
// step: that step COMPENSATION_REFUSED, every other one COMPENSATED). A step
// goes PENDING -> EXERCISING -> APPLIED or FAILED, and on compensation ->
// COMPENSATING -> COMPENSATED or COMPENSATION_REFUSED. Every step that is not
// yet compensated is compensated on failure, in reverse order, including
// steps never exercised, so that their issuers release what they hold (a
// payment authorization) and refuse the token for good.
//
// NEEDS_OPERATOR is final: no Runner resumes it. Each refused compensation
// is logged at ERROR once (order, capability, the issuer's code and message;
// never the token) and counted by capability (Runner.Refused).
//
// # Observing
//
// Each order's way through the saga is logged at INFO once the transition
// is written: "order compensating", then "order completed", "order failed"
// or "order needs an operator", each with the order's id, its outcome and
// the time since it was placed (duration_ms), and the failure reason when
// there is one.
//
// # The transaction continues
//
// The saga runs after the request that placed the order has returned, and
// resumes hours later on any replica; yet it is the same transaction. The
// order keeps the request's txn (its subject is the order's user) and
// trace context. Every line the saga logs for an order carries that txn;
// its work on an order is one span ("saga"), linked to the request's span;
// and every Exercise and Compensate carries a transaction token of that
// txn and subject with the scope narrowed to the step's capability, asked
// of the Txn-Token Service for each call (Config.Transactions), so that
// the domains verify it as any transaction token and log the same txn. A
// token the service does not give (it is down, or refuses) counts as a
// transient failure of the call: retried as the call would be, its error
// shown on the step. Runner.Calls counts every Exercise and
// Compensate call by capability and outcome, Runner.InFlight the sagas
// running; Runner.Outcomes the orders ended. An operator
// moves the order on outside the saga (domain.Order.RetryRefused puts it
// back to COMPENSATING with a free lease, for any replica's recovery to pick
// up; domain.Order.Resolve ends it FAILED).
//
// # Durability
//
// Each transition is written to the store before the call it announces and
// after its answer, so a crash at any point leaves a state to resume from: an
// order that is not final and whose lease has expired is picked up by the
// Runner of any replica (at start and every RecoverEvery). A step found
// EXERCISING is exercised again: the issuer returns the stored result of the
// first exercise for the same order, so no effect is applied twice. When its
// token has expired meanwhile, the issuer refuses and the order compensates
// (Compensate works on expired tokens).
//
// While a Drive holds an order's lease it is the order's only writer, so it
// reads the order once, when it claims it, and keeps it in memory: each
// transition is one write of what changed, fenced by the lease's epoch and
// the order's version (domain.Repository.Transition), never a re-read. The
// first attempts of a stage's steps are announced in one write (with the
// order's move to IN_PROGRESS for the first stage); the APPLIED of the last
// step writes COMPLETED with it; a transition to a final status releases the
// lease in the same statement. Each written state is handed to Publish.
//
// # Replicas
//
// A Runner works on an order only while it holds the order's lease (a
// conditional update of lease_owner/lease_until), renewing it while it runs,
// so two replicas never run one saga at once. Every write of a transition is
// fenced by the lease: it carries the lease's epoch, which a claim by another
// replica increments, and the store refuses it in the same statement when the
// epoch moved on. A replica that paused past its lease (a GC pause, SIGSTOP, a
// frozen VM) therefore cannot write over its successor's progress: its first
// refused write stops its work on the order (domain.ErrLeaseLost). Calls it
// had in flight may still reach an issuer; they are idempotent per token and
// order, and a voided token refuses a late exercise.
//
// # Retries
//
// Exercise is retried while the issuer answers with a transient code
// (Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal,
// Unknown, Canceled), up to MaxAttempts; a definitive refusal fails the step
// at once. Compensate is retried on the same transient codes without a bound
// on attempts, the step showing its attempts and last error meanwhile; a
// definitive refusal (any other code) ends the step COMPENSATION_REFUSED at
// once. Both wait between attempts with capped exponential backoff and equal
// jitter: the n-th wait is drawn uniformly from [d/2, d], where d is Backoff
// doubled n-1 times, at most MaxBackoff, so that replicas retrying one
// issuer after an outage do not call it in step.
package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/ids"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/app"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
)

// Transactions gives the saga's calls their transaction tokens.
type Transactions interface {
	// Carry returns ctx carrying a verified transaction token of txn for
	// subject, with scope only, for the outgoing call to pass on. Errors
	// carry Connect codes.
	Carry(ctx context.Context, txn, subject, scope string) (context.Context, error)
}

// Capabilities calls an issuer's CapabilityService. Errors carry Connect
// codes.
type Capabilities interface {
	Exercise(ctx context.Context, issuer, token, orderID, idempotencyKey string) (reference string, err error)
	Compensate(ctx context.Context, issuer, token, orderID, reason, idempotencyKey string) error
}

// Config configures a Runner. Zero durations take the documented defaults.
type Config struct {
	Repo   domain.Repository
	Sealer capability.Sealer
	Calls  Capabilities
	// Transactions, when set, gives every Exercise and Compensate of an
	// order that recorded its txn a transaction token of that txn.
	Transactions Transactions
	// Tracer starts the span of a Drive, linked to the span of the request
	// that placed the order. Default a no-op tracer.
	Tracer trace.Tracer
	// Publish is handed every new state of an order, once written
	// (app.Watcher.Publish).
	Publish func(domain.Order)
	Logger  *slog.Logger
	// Lease is how long a claim on an order lasts; renewed every Lease/3.
	// Default 15 s.
	Lease time.Duration
	// CallTimeout bounds one Exercise or Compensate call. Default 5 s.
	CallTimeout time.Duration
	// MaxAttempts bounds Exercise attempts on transient errors. Default 5.
	MaxAttempts int
	// Backoff is the first retry delay, doubled up to MaxBackoff; each wait
	// is jittered down to half of it at most. Defaults 100 ms and 5 s.
	Backoff, MaxBackoff time.Duration
	// RecoverEvery is how often unfinished orders with free leases are
	// looked for. Default 2 s.
	RecoverEvery time.Duration
	Now          func() time.Time
}

// Runner runs sagas. Start it with Run; Start hands it new orders.
type Runner struct {
	cfg   Config
	owner string
	kick  chan string
	wg    sync.WaitGroup

	mu      sync.Mutex
	running map[string]bool
	holds   map[string]*hold // the orders Drive works on

	completed, failed atomic.Int64 // orders this Runner ended, by outcome
	refused           sync.Map     // capability -> *atomic.Int64: compensations refused for good
	calls             sync.Map     // callKey -> *atomic.Int64: Exercise and Compensate calls by outcome
	inFlight          atomic.Int64 // Drives holding an order's lease
}

// The calls the saga makes, for Runner.Calls.
const (
	CallExercise   = "exercise"
	CallCompensate = "compensate"
)

// The outcomes of a call, for Runner.Calls.
const (
	// OutcomeApplied: Exercise applied the step.
	OutcomeApplied = "applied"
	// OutcomeCompensated: Compensate undid (or released) the step.
	OutcomeCompensated = "compensated"
	// OutcomeTransient: the call failed with a transient code (or timed
	// out) and is retried; an Exercise that keeps failing so fails its
	// step after MaxAttempts.
	OutcomeTransient = "transient"
	// OutcomeRefused: the issuer refused Exercise: the step fails and the
	// order compensates.
	OutcomeRefused = "refused"
	// OutcomeRefusedForGood: the issuer refused Compensate, and would again:
	// the step waits for an operator.
	OutcomeRefusedForGood = "refused_for_good"
)

// CallOutcomes returns the outcomes call (CallExercise or CallCompensate)
// may have: the bounded label values of Runner.Calls.
func CallOutcomes(call string) []string {
	if call == CallExercise {
		return []string{OutcomeApplied, OutcomeTransient, OutcomeRefused}
	}
	return []string{OutcomeCompensated, OutcomeTransient, OutcomeRefusedForGood}
}

type callKey struct{ call, capability, outcome string }

var _ app.Starter = (*Runner)(nil)

// New returns a Runner with a fresh owner id for leases.
func New(cfg Config) *Runner {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, 15*time.Second)
	def(&cfg.CallTimeout, 5*time.Second)
	def(&cfg.Backoff, 100*time.Millisecond)
	def(&cfg.MaxBackoff, 5*time.Second)
	def(&cfg.RecoverEvery, 2*time.Second)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Publish == nil {
		cfg.Publish = func(domain.Order) {}
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Runner{cfg: cfg, owner: ids.New("runner"), kick: make(chan string, 1024), running: map[string]bool{},
		holds: map[string]*hold{}}
}

// hold is a Drive's lease on an order, how to stop that Drive, and the
// order as last written: while it holds the lease, the Runner is the
// order's only writer, so it keeps the order in memory and writes each
// transition without reading it back.
type hold struct {
	lease domain.Lease
	stop  context.CancelCauseFunc

	mu    sync.Mutex // serializes the order's transitions
	order domain.Order
}

// Start implements app.Starter: the order's saga starts soon. When the
// queue is full the order waits for the next recovery scan.
func (r *Runner) Start(orderID string) {
	select {
	case r.kick <- orderID:
	default:
	}
}

// Run runs sagas until ctx ends: new orders from Start, and unfinished orders
// whose lease is free, at once and every RecoverEvery. It returns after every
// saga it started has stopped; their state is durable, so another Run picks
// them up.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.RecoverEvery)
	defer t.Stop()
	defer r.wg.Wait()
	r.recover(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case id := <-r.kick:
			r.spawn(ctx, id)
		case <-t.C:
			r.recover(ctx)
		}
	}
}

func (r *Runner) recover(ctx context.Context) {
	ids, err := r.cfg.Repo.Unfinished(ctx, r.cfg.Now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "saga: list unfinished orders", "err", err)
		}
		return
	}
	for _, id := range ids {
		r.spawn(ctx, id)
	}
}

func (r *Runner) spawn(ctx context.Context, id string) {
	r.mu.Lock()
	if r.running[id] {
		r.mu.Unlock()
		return
	}
	r.running[id] = true
	r.mu.Unlock()
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.running, id)
			r.mu.Unlock()
		}()
		switch err := r.Drive(ctx, id); {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, domain.ErrLeaseLost):
			r.cfg.Logger.WarnContext(ctx, "saga: lease lost, another replica has the order", "order", id)
		default:
			r.cfg.Logger.ErrorContext(ctx, "saga stopped", "order", id, "err", err)
		}
	})
}

// Drive runs one order's saga to its end, if this Runner can claim it. It
// returns early, leaving a resumable state, when ctx ends, or with
// domain.ErrLeaseLost when another replica took the order over (this one
// paused past its lease): every write is fenced by the lease, and the first
// one refused stops the saga here.
func (r *Runner) Drive(parent context.Context, id string) (err error) {
	now := r.cfg.Now()
	lease, ok, err := r.cfg.Repo.Claim(parent, id, r.owner, now, now.Add(r.cfg.Lease))
	if err != nil || !ok {
		return err
	}
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	ctx, cancel := context.WithCancelCause(parent)
	h := &hold{lease: lease, stop: cancel}
	defer func() {
		r.mu.Lock()
		delete(r.holds, id)
		r.mu.Unlock()
		h.mu.Lock()
		ended := h.order.Status.Final() // its last transition released the lease
		h.mu.Unlock()
		if ended {
			return
		}
		if errors.Is(context.Cause(ctx), domain.ErrLeaseLost) {
			err = domain.ErrLeaseLost
		}
		// Release with a fresh context: the parent may be done already.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(parent), time.Second)
		defer rcancel()
		_ = r.cfg.Repo.Release(rctx, id, lease)
	}()
	// The one read of the order while this Drive holds it.
	if h.order, err = r.cfg.Repo.Order(ctx, id); err != nil {
		cancel(nil)
		return err
	}
	r.mu.Lock()
	r.holds[id] = h
	r.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.renew(ctx, cancel, id, lease) })
	defer cancel(nil)

	o := h.order
	// The renewal above reads ctx: the rest works in its own.
	sctx, end := r.follow(ctx, o)
	defer end()
	if o.Status == domain.OrderPending || o.Status == domain.OrderInProgress {
		if o, err = r.forward(sctx, o); err != nil {
			return err
		}
	}
	if o.Status == domain.OrderCompensating {
		return r.backward(sctx, o)
	}
	return nil
}

// follow returns ctx labelled with the order's transaction, for every log
// line, in a new span linked to the request that placed the order.
func (r *Runner) follow(ctx context.Context, o domain.Order) (context.Context, func()) {
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithAttributes(attribute.String("order", o.ID))}
	if o.Txn != "" {
		ctx = authn.ContextWithTxn(ctx, o.Txn)
		opts = append(opts, trace.WithAttributes(attribute.String(telemetry.TxnAttribute, o.Txn)))
	}
	if link, ok := telemetry.Link(o.TraceParent); ok {
		opts = append(opts, trace.WithLinks(link))
	}
	ctx, span := r.cfg.Tracer.Start(ctx, "saga", opts...)
	return ctx, func() { span.End() }
}

// carry returns ctx carrying the transaction token of a call for step
// capability of order o (see Transactions); ctx as it is when the order
// recorded no txn or no Transactions is configured.
func (r *Runner) carry(ctx context.Context, o txnOf, capability string) (context.Context, error) {
	if r.cfg.Transactions == nil || o.txn == "" {
		return ctx, nil
	}
	out, err := r.cfg.Transactions.Carry(ctx, o.txn, o.subject, capability)
	if err != nil {
		return ctx, connect.NewError(connect.CodeUnavailable, fmt.Errorf("transaction token: %s", describe(err)))
	}
	return out, nil
}

// txnOf is the transaction an order continues: its txn and subject.
type txnOf struct{ txn, subject string }

func transactionOf(o domain.Order) txnOf { return txnOf{txn: o.Txn, subject: o.UserID} }

// renew extends the lease every Lease/3 and stops the saga when it cannot,
// or when the claim started a new epoch (another replica held the order in
// between): the writes of this Drive would be refused.
func (r *Runner) renew(ctx context.Context, cancel context.CancelCauseFunc, id string, held domain.Lease) {
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := r.cfg.Now()
			lease, ok, err := r.cfg.Repo.Claim(ctx, id, r.owner, now, now.Add(r.cfg.Lease))
			switch {
			case err != nil:
				cancel(fmt.Errorf("renew the lease: %w", err))
				return
			case !ok || lease != held:
				cancel(domain.ErrLeaseLost)
				return
			}
		}
	}
}

// update writes a transition of an order this Runner's Drive holds: fn
// changes the order as last written, and the result is written fenced by
// the lease and the version, then published. A transition to a final
// status releases the lease in the same write. A write refused for a lost
// lease stops that Drive.
func (r *Runner) update(ctx context.Context, id string, fn func(*domain.Order) error) (domain.Order, error) {
	r.mu.Lock()
	h, ok := r.holds[id]
	r.mu.Unlock()
	if !ok {
		return domain.Order{}, fmt.Errorf("order %s: %w", id, domain.ErrLeaseLost)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	next := h.order
	next.Steps = slices.Clone(h.order.Steps)
	if err := fn(&next); err != nil {
		return domain.Order{}, err
	}
	next.UpdatedAt = r.cfg.Now().UTC().Truncate(time.Microsecond)
	o, err := r.cfg.Repo.Transition(ctx, h.lease, h.order, next, next.Status.Final())
	switch {
	case err == nil:
		h.order = o
		// Counted and logged before anyone can see the order ended.
		switch o.Status {
		case domain.OrderCompleted:
			r.completed.Add(1)
			r.logOrder(ctx, "order completed", o)
		case domain.OrderFailed:
			r.failed.Add(1)
			r.logOrder(ctx, "order failed", o)
		case domain.OrderNeedsOperator:
			r.logOrder(ctx, "order needs an operator", o)
		}
		r.cfg.Publish(o)
	case errors.Is(err, domain.ErrLeaseLost):
		h.stop(domain.ErrLeaseLost)
	}
	return o, err
}

func (r *Runner) updateStep(ctx context.Context, id, capability string, fn func(*domain.Step)) (domain.Order, error) {
	return r.update(ctx, id, func(o *domain.Order) error {
		i := slices.IndexFunc(o.Steps, func(s domain.Step) bool { return s.Capability == capability })
		if i < 0 {
			return fmt.Errorf("order %s has no step %s", id, capability)
		}
		fn(&o.Steps[i])
		return nil
	})
}

// current returns the order as this Runner's Drive last wrote it.
func (r *Runner) current(id string) (domain.Order, bool) {
	r.mu.Lock()
	h, ok := r.holds[id]
	r.mu.Unlock()
	if !ok {
		return domain.Order{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.order, true
}

// forward exercises the stages in order and returns the order COMPLETED, or
// COMPENSATING after a failed step. A stage's first attempts are announced
// in one write (with the order's move to IN_PROGRESS for the first), and
// the step whose APPLIED completes the order writes COMPLETED with it.
func (r *Runner) forward(ctx context.Context, o domain.Order) (domain.Order, error) {
	for _, stage := range stages(o.Steps) {
		due := func(st domain.Step) bool {
			return st.Stage == stage && (st.State == domain.StepPending || st.State == domain.StepExercising)
		}
		if slices.ContainsFunc(o.Steps, due) {
			var err error
			o, err = r.update(ctx, o.ID, func(o *domain.Order) error {
				o.Status = domain.OrderInProgress
				for i := range o.Steps {
					if due(o.Steps[i]) {
						o.Steps[i].State = domain.StepExercising
						o.Steps[i].Attempts++
					}
				}
				return nil
			})
			if err != nil {
				return o, err
			}
		}
		var wg sync.WaitGroup
		for _, st := range o.Steps {
			if st.Stage == stage && st.State == domain.StepExercising {
				wg.Go(func() { r.exercise(ctx, o.ID, transactionOf(o), st) })
			}
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return o, err
		}
		var ok bool
		if o, ok = r.current(o.ID); !ok {
			return o, domain.ErrLeaseLost
		}
		if o.Status == domain.OrderCompleted {
			return o, nil
		}
		if i := slices.IndexFunc(o.Steps, func(s domain.Step) bool { return s.State == domain.StepFailed }); i >= 0 {
			failed := o.Steps[i]
			next, err := r.update(ctx, o.ID, func(o *domain.Order) error {
				o.Status = domain.OrderCompensating
				o.FailureReason = fmt.Sprintf("%s refused: %s", failed.Capability, failed.LastError)
				return nil
			})
			if err == nil {
				r.logOrder(ctx, "order compensating", next, "step", failed.Capability)
			}
			return next, err
		}
		for _, st := range o.Steps {
			if st.Stage == stage && st.State != domain.StepApplied {
				return o, fmt.Errorf("step %s ended %d", st.Capability, st.State)
			}
		}
	}
	// Every step was APPLIED before this Drive (a takeover after the last
	// one was written).
	return r.update(ctx, o.ID, func(o *domain.Order) error { o.Status = domain.OrderCompleted; return nil })
}

// logOrder logs a transition of order o, once it is written: its id, the
// outcome (its status), the time since it was placed and its failure
// reason, if any, with attrs. Never a token: the reason holds the issuers'
// codes and messages, which they write for clients.
func (r *Runner) logOrder(ctx context.Context, msg string, o domain.Order, attrs ...any) {
	attrs = append([]any{"order", o.ID, "outcome", outcome(o.Status),
		"duration_ms", r.cfg.Now().Sub(o.CreatedAt).Milliseconds()}, attrs...)
	if o.FailureReason != "" {
		attrs = append(attrs, "reason", o.FailureReason)
	}
	r.cfg.Logger.InfoContext(ctx, msg, attrs...)
}

// outcome is the log's name of a saga's status.
func outcome(s domain.OrderStatus) string {
	switch s {
	case domain.OrderCompleted:
		return "completed"
	case domain.OrderCompensating:
		return "compensating"
	case domain.OrderFailed:
		return "failed"
	case domain.OrderNeedsOperator:
		return "needs_operator"
	}
	return fmt.Sprint(int(s))
}

// Calls returns how many call ("exercise" or "compensate") this Runner made
// for steps of capability that ended with outcome (CallOutcomes). A call
// cut short because the Runner stopped is not counted: it is made again.
func (r *Runner) Calls(call, capability, outcome string) int64 {
	if n, ok := r.calls.Load(callKey{call, capability, outcome}); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (r *Runner) countCall(call, capability, outcome string) {
	n, _ := r.calls.LoadOrStore(callKey{call, capability, outcome}, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// InFlight returns how many sagas this Runner is driving now (orders whose
// lease it holds).
func (r *Runner) InFlight() int64 { return r.inFlight.Load() }

// Owner returns the name this Runner holds leases under.
func (r *Runner) Owner() string { return r.owner }

// Outcomes returns how many orders this Runner ended COMPLETED and FAILED.
func (r *Runner) Outcomes() (completed, failed int64) { return r.completed.Load(), r.failed.Load() }

// Refused returns how many compensations of steps of capability this
// Runner saw refused for good (each step counted once, when it became
// COMPENSATION_REFUSED).
func (r *Runner) Refused(capability string) int64 {
	if n, ok := r.refused.Load(capability); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (r *Runner) countRefused(capability string) {
	n, _ := r.refused.LoadOrStore(capability, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func stages(steps []domain.Step) []int {
	var out []int
	for _, s := range steps {
		if !slices.Contains(out, s.Stage) {
			out = append(out, s.Stage)
		}
	}
	slices.Sort(out)
	return out
}

// transient reports whether a failed call may succeed if repeated.
func transient(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted,
		connect.CodeAborted, connect.CodeInternal, connect.CodeUnknown, connect.CodeCanceled:
		return true
	}
	return false
}

// describe is the safe text of a call error for the order: code and the
// issuer's message, which issuers write for clients.
func describe(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code().String() + ": " + ce.Message()
	}
	return connect.CodeOf(err).String()
}

func (r *Runner) token(st domain.Step, orderID string) (string, error) {
	return r.cfg.Sealer.Open(app.TokenRecordID(orderID, st.Capability), st.SealedToken)
}

// exercise drives one step, whose first attempt forward wrote, to APPLIED or
// FAILED, or returns with ctx done leaving it EXERCISING. The APPLIED of the
// order's last step also completes the order.
func (r *Runner) exercise(ctx context.Context, orderID string, txn txnOf, st domain.Step) {
	raw, err := r.token(st, orderID)
	if err != nil {
		r.cfg.Logger.ErrorContext(ctx, "saga: open sealed token", "order", orderID, "step", st.Capability, "err", err)
		_, _ = r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) { s.State, s.LastError = domain.StepFailed, "token unreadable" })
		return
	}
	backoff := r.cfg.Backoff
	key := orderID + "/" + st.Capability + "/exercise"
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if _, err := r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) { s.State = domain.StepExercising; s.Attempts++ }); err != nil {
				return
			}
		}
		cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
		var ref string
		cctx, err := r.carry(cctx, txn, st.Capability)
		if err == nil {
			ref, err = r.cfg.Calls.Exercise(cctx, st.Issuer, raw, orderID, key)
		}
		cancel()
		if ctx.Err() != nil {
			return // stopping: the step stays EXERCISING and is resumed
		}
		switch {
		case err == nil:
			r.countCall(CallExercise, st.Capability, OutcomeApplied)
		case transient(err):
			r.countCall(CallExercise, st.Capability, OutcomeTransient)
		default:
			r.countCall(CallExercise, st.Capability, OutcomeRefused)
		}
		if err == nil {
			_, _ = r.update(ctx, orderID, func(o *domain.Order) error {
				i := slices.IndexFunc(o.Steps, func(s domain.Step) bool { return s.Capability == st.Capability })
				o.Steps[i].State, o.Steps[i].Reference, o.Steps[i].LastError = domain.StepApplied, ref, ""
				if !slices.ContainsFunc(o.Steps, func(s domain.Step) bool { return s.State != domain.StepApplied }) {
					o.Status = domain.OrderCompleted
				}
				return nil
			})
			return
		}
		final := !transient(err) || attempt >= r.cfg.MaxAttempts
		_, _ = r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) {
			s.LastError = describe(err)
			if final {
				s.State = domain.StepFailed
			}
		})
		if final {
			return
		}
		if !sleep(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// jitter returns a wait drawn uniformly from [d/2, d] ("equal jitter"): at
// least half the backoff, so retries still slow down, and spread, so that
// the calls of many sagas retrying after one outage do not arrive together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return d - half + rand.N(half+1)
}

// backward compensates every step not yet compensated (or refused for
// good), in reverse order, then ends the order FAILED, or NEEDS_OPERATOR when
// an issuer refused a compensation for good: the other steps are still
// compensated first.
func (r *Runner) backward(ctx context.Context, o domain.Order) error {
	for i := len(o.Steps) - 1; i >= 0; i-- {
		switch st := o.Steps[i]; st.State {
		case domain.StepCompensated, domain.StepCompensationRefused, domain.StepResolved:
		default:
			if !r.compensate(ctx, o.ID, transactionOf(o), st, o.FailureReason) {
				return ctx.Err() // nil after a failed write: recovery resumes the order
			}
		}
	}
	_, err := r.update(ctx, o.ID, func(o *domain.Order) error {
		o.Status = domain.OrderFailed
		if refused := o.Refused(); len(refused) > 0 {
			o.Status, o.FailureReason = domain.OrderNeedsOperator, domain.NeedsOperatorReason(o.FailureReason, refused)
		}
		return nil
	})
	return err
}

// compensate retries until the issuer confirms or refuses for good (the step
// ends COMPENSATED or COMPENSATION_REFUSED); false when ctx ended first or
// that last transition could not be written.
func (r *Runner) compensate(ctx context.Context, orderID string, txn txnOf, st domain.Step, reason string) bool {
	raw, err := r.token(st, orderID)
	if err != nil {
		// Without the token the issuer cannot be asked: keep trying to read
		// it (a vault key may come back) and show why.
		r.cfg.Logger.ErrorContext(ctx, "saga: open sealed token", "order", orderID, "step", st.Capability, "err", err)
	}
	reason = capability.ClipReason(reason) // what CapabilityService accepts
	backoff := r.cfg.Backoff
	key := orderID + "/" + st.Capability + "/compensate"
	for {
		if _, err := r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) { s.State = domain.StepCompensating; s.Attempts++ }); err != nil {
			return false
		}
		err = nil
		if raw == "" {
			raw, err = r.token(st, orderID)
		}
		called := err == nil
		if called {
			cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
			if cctx, err = r.carry(cctx, txn, st.Capability); err == nil {
				err = r.cfg.Calls.Compensate(cctx, st.Issuer, raw, orderID, reason, key)
			}
			cancel()
		}
		if ctx.Err() != nil {
			return false
		}
		if called {
			switch {
			case err == nil:
				r.countCall(CallCompensate, st.Capability, OutcomeCompensated)
			case transient(err):
				r.countCall(CallCompensate, st.Capability, OutcomeTransient)
			default:
				r.countCall(CallCompensate, st.Capability, OutcomeRefusedForGood)
			}
		}
		switch {
		case err == nil:
			_, err = r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) { s.State, s.LastError = domain.StepCompensated, "" })
			return err == nil
		case called && !transient(err):
			// The issuer's own check refuses it, and will again: retrying
			// cannot end. The step waits for an operator.
			return r.refuse(ctx, orderID, st, err)
		}
		_, _ = r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) { s.LastError = describe(err) })
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// refuse ends a step COMPENSATION_REFUSED with the issuer's answer, then
// logs it at ERROR and counts it, once: only after the transition is
// written, so a Drive that lost its lease (and whose successor calls again)
// neither logs nor counts.
func (r *Runner) refuse(ctx context.Context, orderID string, st domain.Step, err error) bool {
	if _, werr := r.updateStep(ctx, orderID, st.Capability, func(s *domain.Step) {
		s.State, s.LastError = domain.StepCompensationRefused, describe(err)
	}); werr != nil {
		return false
	}
	r.countRefused(st.Capability)
	msg := ""
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	r.cfg.Logger.ErrorContext(ctx, "saga: compensation refused for good; the order needs an operator",
		"order", orderID, "capability", st.Capability, "issuer", st.Issuer,
		"code", connect.CodeOf(err).String(), "message", msg)
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
