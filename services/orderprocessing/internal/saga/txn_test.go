package saga_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/telemetry"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/domain"
	"github.com/tokenrelay/tokenrelay/services/orderprocessing/internal/saga"
)

// transactions stands for the Txn-Token Service: it records each request
// and puts a token of it in the context; fail, when set, refuses a request.
type transactions struct {
	mu   sync.Mutex
	asks []string // "txn subject scope"
	fail func(scope string, n int) error
}

func (tr *transactions) Carry(ctx context.Context, txn, subject, scope string) (context.Context, error) {
	tr.mu.Lock()
	tr.asks = append(tr.asks, txn+" "+subject+" "+scope)
	n := len(tr.asks)
	fail := tr.fail
	tr.mu.Unlock()
	if fail != nil {
		if err := fail(scope, n); err != nil {
			return ctx, err
		}
	}
	return authn.ContextWithTransaction(ctx, "token-of-"+txn, token.TransactionClaims{
		Registered: token.Registered{Subject: subject}, Txn: txn, Scope: scope}), nil
}

// carried describes the transaction a call's context carries.
func carried(ctx context.Context) string {
	c, _ := authn.CallerFrom(ctx)
	return c.Txn + " " + c.Subject + " " + strings.Join(c.Scopes, " ")
}

// TestSagaCarriesTransaction: every Exercise and Compensate carries a
// transaction token of the order's txn and user, scope the step's
// capability; a token the service does not give is a transient failure of
// the call (retried, shown on the step); the saga's lines carry the txn and
// its span links to the request's.
func TestSagaCarriesTransaction(t *testing.T) {
	t.Parallel()
	store := newStore(t, sqldbtest.SQLite(t))
	o := placed(t, store)
	logs := &strings.Builder{}
	var logMu sync.Mutex
	log := slog.New(authn.NewLogHandler(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil)))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	tr := &transactions{fail: func(scope string, n int) error {
		if scope == "coupons:redeem" && n == 1 { // the service is down once
			return connect.NewError(connect.CodeUnavailable, errors.New("txn token service down"))
		}
		return nil
	}}
	var mu sync.Mutex
	var seen []string
	c := &calls{
		exercise: func(ctx context.Context, issuer string) (string, error) {
			mu.Lock()
			seen = append(seen, "exercise "+carried(ctx))
			mu.Unlock()
			if issuer == "payments" {
				return "", connect.NewError(connect.CodeFailedPrecondition, errors.New("declined"))
			}
			return "ref", nil
		},
		compensate: func(ctx context.Context, _ string) error {
			mu.Lock()
			seen = append(seen, "compensate "+carried(ctx))
			mu.Unlock()
			return nil
		},
	}
	r := saga.New(saga.Config{Repo: store, Sealer: sealer{}, Calls: c, Transactions: tr, Tracer: tp.Tracer("test"),
		Logger: log, Backoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err := r.Drive(t.Context(), o.ID); err != nil {
		t.Fatal(err)
	}
	end, err := store.Order(t.Context(), o.ID)
	if err != nil || end.Status != domain.OrderFailed {
		t.Fatalf("order %v, %v; want FAILED", end.Status, err)
	}
	want := []string{
		"exercise " + o.Txn + " usr_ann coupons:redeem", // after one refused token
		"exercise " + o.Txn + " usr_ann payments:capture",
		"compensate " + o.Txn + " usr_ann payments:capture",
		"compensate " + o.Txn + " usr_ann coupons:redeem",
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("calls carried\n%v\nwant\n%v", seen, want)
	}
	if len(tr.asks) != 5 || tr.asks[0] != o.Txn+" usr_ann coupons:redeem" {
		t.Fatalf("asked the Txn-Token Service %v", tr.asks)
	}
	if r.Calls(saga.CallExercise, "coupons:redeem", saga.OutcomeTransient) != 1 {
		t.Error("a token not given is not counted as a transient failure of the call")
	}

	logMu.Lock()
	all := logs.String()
	logMu.Unlock()
	if !strings.Contains(all, `"msg":"order failed"`) || !strings.Contains(all, `"txn":"`+o.Txn+`"`) || strings.Contains(all, "token-of-") {
		t.Fatalf("the saga's lines lack the txn, or carry a token:\n%s", all)
	}
	link, _ := telemetry.Link(requestTraceParent)
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "saga" || len(spans[0].Links()) != 1 ||
		spans[0].Links()[0].SpanContext.TraceID() != link.SpanContext.TraceID() ||
		spans[0].Links()[0].SpanContext.SpanID() != link.SpanContext.SpanID() {
		t.Fatalf("spans %v: want one saga span linked to the request's", spans)
	}
	if spans[0].SpanContext().TraceID() == link.SpanContext.TraceID() {
		t.Fatal("the saga's span is in the request's trace: it must be a new root, linked")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
