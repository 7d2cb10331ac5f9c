package authn_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

const trustDomain = "tokenrelay.test"

// world holds the keys of a gateway and of the workloads in a test.
type world struct {
	gateway      *token.Issuer
	orders       *token.Issuer // a workload: "order-processing"
	intruder     *token.Issuer // a workload nobody allows
	txnVerifier  *token.Verifier
	workVerifier *token.Verifier
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ring := func() *keys.Ring {
		r, err := keys.NewRing()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	gw, op, in := ring(), ring(), ring()
	issuer := func(name string, r *keys.Ring) *token.Issuer {
		is, err := token.NewIssuer(name, r)
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	txnV, err := token.NewVerifier(token.Trust("gateway", gw, token.Accept(token.Transaction, trustDomain)))
	if err != nil {
		t.Fatal(err)
	}
	wlV, err := token.NewVerifier(
		token.Trust("order-processing", op, token.Accept(token.Workload, "points")),
		token.Trust("intruder", in, token.Accept(token.Workload, "points")),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txnV.Close)
	t.Cleanup(wlV.Close)
	return &world{issuer("gateway", gw), issuer("order-processing", op), issuer("intruder", in), txnV, wlV}
}

func (w *world) txn(t *testing.T, sub, scope string) (string, token.TransactionClaims) {
	t.Helper()
	raw, claims, err := token.Issue(t.Context(), w.gateway, token.Transaction, token.TransactionClaims{
		Registered: token.Registered{Subject: sub, Audience: []string{trustDomain}},
		Scope:      scope, Context: map[string]string{"tenant": "demo"}, RequestingWorkload: "gateway",
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw, claims
}

// syncBuffer is a log sink safe for the concurrent handlers of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hop is a CapabilityService that logs its caller and, unless it is the
// last, calls the next hop with the context it received.
type hop struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
	name string
	log  *slog.Logger
	next capabilityv1connect.CapabilityServiceClient
}

func (h *hop) Exercise(ctx context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	caller, ok := authn.CallerFrom(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, errors.New("no caller"))
	}
	h.log.InfoContext(ctx, "exercise", "service", h.name, "sub", caller.Subject)
	if h.next == nil {
		return connect.NewResponse(&capabilityv1.ExerciseResponse{Exercise: &capabilityv1.Exercise{Reference: caller.Txn}}), nil
	}
	return h.next.Exercise(ctx, req)
}

func serve(t *testing.T, h capabilityv1connect.CapabilityServiceHandler, opts ...connect.HandlerOption) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(h, opts...))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestChainKeepsOneTxn calls a chain of three services: each verifies the
// transaction token, logs with its txn, and passes it on unchanged.
func TestChainKeepsOneTxn(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	logs := &syncBuffer{}
	logger := slog.New(authn.NewLogHandler(slog.NewJSONHandler(logs, nil)))
	server := connect.WithInterceptors(authn.NewServerInterceptor(w.txnVerifier))
	client := connect.WithInterceptors(authn.NewClientInterceptor())

	var url string
	for _, name := range []string{"c", "b", "a"} {
		h := &hop{name: name, log: logger}
		if url != "" {
			h.next = capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url, client)
		}
		url = serve(t, h, server)
	}
	raw, claims := w.txn(t, "usr_alice", "shop")
	first := capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url)
	req := connect.NewRequest(&capabilityv1.ExerciseRequest{})
	req.Header().Set(authn.TxnHeader, raw)
	res, err := first.Exercise(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetExercise().GetReference(); got != claims.Txn {
		t.Fatalf("last hop saw txn %q, want %q", got, claims.Txn)
	}
	out := logs.String()
	for _, name := range []string{"a", "b", "c"} {
		if !strings.Contains(out, `"service":"`+name+`","sub":"usr_alice","txn":"`+claims.Txn+`"`) {
			t.Errorf("no log line of service %s with txn %s in:\n%s", name, claims.Txn, out)
		}
	}
	if strings.Contains(out, raw) {
		t.Error("a log line contains the token")
	}
}

func TestServerRefuses(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	other := newWorld(t) // same names, other keys
	url := serve(t, &hop{name: "points", log: slog.New(slog.DiscardHandler)}, connect.WithInterceptors(
		authn.NewServerInterceptor(w.txnVerifier,
			authn.RequireWorkload(capabilityv1connect.CapabilityServiceName, w.workVerifier, "order-processing")),
	))
	good, _ := w.txn(t, "usr_alice", "shop")
	forged, _ := other.txn(t, "usr_alice", "shop")
	// Each call below is an Exercise of an empty request.
	exercise, err := authn.RequestDigest(&capabilityv1.ExerciseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	bound := func(is *token.Issuer, aud, procedure, req string) string {
		raw, _, err := token.Issue(t.Context(), is, token.Workload, token.WorkloadClaims{
			Registered: token.Registered{Audience: []string{aud}}, Procedure: procedure, RequestDigest: req,
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	workload := func(is *token.Issuer, aud string) string {
		return bound(is, aud, capabilityv1connect.CapabilityServiceExerciseProcedure, exercise)
	}
	otherReq, err := authn.RequestDigest(&capabilityv1.ExerciseRequest{OrderId: "ord_1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		txn, workload string
		want          connect.Code // 0: success
	}{
		{"no txn token", "", workload(w.orders, "points"), connect.CodeUnauthenticated},
		{"garbage txn token", "not.a.token", workload(w.orders, "points"), connect.CodeUnauthenticated},
		{"txn token signed by another gateway", forged, workload(w.orders, "points"), connect.CodeUnauthenticated},
		{"workload token as txn token", workload(w.orders, "points"), workload(w.orders, "points"), connect.CodeUnauthenticated},
		{"no workload token", good, "", connect.CodeUnauthenticated},
		{"txn token as workload token", good, good, connect.CodeUnauthenticated},
		{"workload for another audience", good, workload(w.orders, "coupons"), connect.CodeUnauthenticated},
		{"workload not allowed", good, workload(w.intruder, "points"), connect.CodePermissionDenied},
		{"workload by unknown key", good, workload(other.orders, "points"), connect.CodeUnauthenticated},
		{"workload bound to another procedure", good, bound(w.orders, "points", capabilityv1connect.CapabilityServiceCompensateProcedure, exercise), connect.CodeUnauthenticated},
		{"workload bound to another request", good, bound(w.orders, "points", capabilityv1connect.CapabilityServiceExerciseProcedure, otherReq), connect.CodeUnauthenticated},
		{"workload bound to a stream", good, bound(w.orders, "points", capabilityv1connect.CapabilityServiceExerciseProcedure, authn.StreamRequest), connect.CodeUnauthenticated},
		{"workload not allowed, bound to another request", good, bound(w.intruder, "points", capabilityv1connect.CapabilityServiceExerciseProcedure, otherReq), connect.CodeUnauthenticated},
		{"allowed", good, workload(w.orders, "points"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := connect.NewRequest(&capabilityv1.ExerciseRequest{})
			if tc.txn != "" {
				req.Header().Set(authn.TxnHeader, tc.txn)
			}
			if tc.workload != "" {
				req.Header().Set(authn.WorkloadHeader, tc.workload)
			}
			_, err := capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url).Exercise(t.Context(), req)
			if (err == nil) != (tc.want == 0) || err != nil && connect.CodeOf(err) != tc.want {
				t.Fatalf("error = %v, want code %v", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), tc.txn) && tc.txn != "" || strings.Contains(err.Error(), tc.workload) && tc.workload != "") {
				t.Fatalf("error echoes a token: %v", err)
			}
		})
	}
}

// TestClientSignsWorkload shows a client with WithWorkload reaching a
// procedure that requires it, the transaction token riding along.
func TestClientSignsWorkload(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	url := serve(t, &hop{name: "points", log: slog.New(slog.DiscardHandler)}, connect.WithInterceptors(
		authn.NewServerInterceptor(w.txnVerifier,
			authn.RequireWorkload(capabilityv1connect.CapabilityServiceName, w.workVerifier, "order-processing")),
	))
	raw, claims := w.txn(t, "usr_bob", "shop")
	ctx := authn.ContextWithTransaction(t.Context(), raw, claims)
	client := capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url,
		connect.WithInterceptors(authn.NewClientInterceptor(authn.WithWorkload(w.orders, "points"))))
	res, err := client.Exercise(ctx, connect.NewRequest(&capabilityv1.ExerciseRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Msg.GetExercise().GetReference() != claims.Txn {
		t.Fatal("txn not propagated")
	}
	// Without a transaction in the context the call carries none.
	_, err = client.Exercise(t.Context(), connect.NewRequest(&capabilityv1.ExerciseRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("call without txn: %v", err)
	}
}

func TestAllowAnonymous(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	url := serve(t, &hop{name: "x", log: slog.New(slog.DiscardHandler)}, connect.WithInterceptors(
		authn.NewServerInterceptor(w.txnVerifier, authn.AllowAnonymous(capabilityv1connect.CapabilityServiceCompensateProcedure))))
	client := capabilityv1connect.NewCapabilityServiceClient(http.DefaultClient, url)
	_, err := client.Compensate(t.Context(), connect.NewRequest(&capabilityv1.CompensateRequest{}))
	if connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("anonymous procedure: %v, want it to reach the handler (unimplemented)", err)
	}
	req := connect.NewRequest(&capabilityv1.CompensateRequest{})
	req.Header().Set(authn.TxnHeader, "bad")
	_, err = client.Compensate(t.Context(), req)
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("anonymous procedure with a bad token: %v, want unauthenticated", err)
	}
	if _, err := client.Exercise(t.Context(), connect.NewRequest(&capabilityv1.ExerciseRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("other procedure: %v", err)
	}
}
