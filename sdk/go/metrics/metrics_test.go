package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1/capabilityv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/keys"
	"github.com/tokenrelay/tokenrelay/sdk/go/metrics"
	"github.com/tokenrelay/tokenrelay/sdk/go/rpcerr"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
)

// capability answers Exercise with the error its request's order id names.
type capability struct {
	capabilityv1connect.UnimplementedCapabilityServiceHandler
}

func (capability) Exercise(_ context.Context, req *connect.Request[capabilityv1.ExerciseRequest]) (*connect.Response[capabilityv1.ExerciseResponse], error) {
	switch req.Msg.GetOrderId() {
	case "expired":
		return nil, rpcerr.Token(fmt.Errorf("confirmation token: %w", token.ErrExpired), rpcerr.AsArgument())
	case "replayed":
		return nil, rpcerr.Token(token.ErrReplayed)
	}
	return connect.NewResponse(&capabilityv1.ExerciseResponse{}), nil
}

func TestRPCMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	mux := m.Mux()
	mux.Handle(capabilityv1connect.NewCapabilityServiceHandler(capability{}, m.HandlerOption()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// Two protocols, so that the codes are read whatever the wire says.
	for _, protocol := range []connect.ClientOption{connect.WithProtoJSON(), connect.WithGRPCWeb()} {
		c := capabilityv1connect.NewCapabilityServiceClient(srv.Client(), srv.URL, protocol)
		if _, err := c.Exercise(t.Context(), connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "ok"})); err != nil {
			t.Fatalf("Exercise: %v", err)
		}
		_, err := c.Exercise(t.Context(), connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "expired"}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("Exercise(expired): %v", err)
		}
		if _, err := c.Compensate(t.Context(), connect.NewRequest(&capabilityv1.CompensateRequest{})); connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Fatalf("Compensate: %v", err)
		}
	}
	_, err := capabilityv1connect.NewCapabilityServiceClient(srv.Client(), srv.URL).Exercise(t.Context(),
		connect.NewRequest(&capabilityv1.ExerciseRequest{OrderId: "replayed"}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("replayed: %v", err)
	}
	// Unknown procedures stay one label, whatever the path.
	m.Observe("/tokenrelay.capability.v1.CapabilityService/NoSuchMethod", nil, time.Millisecond)
	m.Observe("/evil/"+strings.Repeat("x", 10), nil, time.Millisecond)

	body := scrape(t, m)
	for _, want := range []string{
		`tokenrelay_rpc_requests_total{code="ok",procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 2`,
		`tokenrelay_rpc_requests_total{code="failed_precondition",procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 2`,
		`tokenrelay_rpc_requests_total{code="unimplemented",procedure="/tokenrelay.capability.v1.CapabilityService/Compensate"} 2`,
		`tokenrelay_rpc_requests_total{code="ok",procedure="unknown"} 2`,
		`tokenrelay_rpc_duration_seconds_count{procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 5`,
		`tokenrelay_token_refusals_total{reason="expired"} 2`,
		`tokenrelay_token_refusals_total{reason="replayed"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// TestRefusalReasons checks the reason labels, which dashboards count by.
func TestRefusalReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{rpcerr.Token(fmt.Errorf("access token: %w", token.ErrSignature)), "signature"},
		{rpcerr.Token(fmt.Errorf("x: %w", keys.ErrKeyNotFound)), "unknown_key"},
		{rpcerr.Token(fmt.Errorf("x: %w", keys.ErrUnavailable)), "keys_unavailable"},
		{connect.NewError(connect.CodeUnauthenticated, authn.ErrMissingToken), "missing"},
		{connect.NewError(connect.CodePermissionDenied, authn.ErrWorkloadNotAllowed), "workload_not_allowed"},
		{connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: Txn-Token", authn.ErrRepeatedHeader)), "repeated_header"},
		{connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: request", authn.ErrWorkloadBinding)), "workload_binding"},
		// A forgery with an unknown kid counts as a bad signature, not as
		// a key problem of a trusted issuer.
		{rpcerr.Token(fmt.Errorf("x: %w", fmt.Errorf("%w: no key of this kid: %w", token.ErrSignature, keys.ErrKeyNotFound))), "signature"},
		{fmt.Errorf("wrapped: %w", token.ErrAudience), "audience"},
		{errors.New("database down"), ""},
	} {
		m := metrics.New()
		m.Observe("/tokenrelay.capability.v1.CapabilityService/Exercise", tc.err, time.Millisecond)
		body := scrape(t, m)
		if want := `tokenrelay_token_refusals_total{reason="` + tc.want + `"} 1`; tc.want != "" && !strings.Contains(body, want) {
			t.Errorf("Observe(%v): metrics lack %s", tc.err, want)
		}
		if tc.want == "" && strings.Contains(body, "tokenrelay_token_refusals_total{") {
			t.Errorf("Observe(%v) counted a refusal", tc.err)
		}
	}
}

// TestRefused (issue 20): a refusal a handler counts itself (Refused) is
// counted once, even when Observe sees it again; the marked error keeps its
// code and chain; an error that is no refusal is not counted.
func TestRefused(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	refusal := rpcerr.Token(fmt.Errorf("confirmation token 1: %w", token.ErrExpired), rpcerr.AsArgument())
	err := m.Refused(refusal)
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !errors.Is(err, token.ErrExpired) || err.Error() != refusal.Error() {
		t.Fatalf("Refused changed the error: %v (%v)", err, connect.CodeOf(err))
	}
	if again := m.Refused(err); again != err {
		t.Fatal("a counted refusal was marked twice")
	}
	m.Observe("/tokenrelay.capability.v1.CapabilityService/Exercise", err, time.Millisecond)
	if m.Refused(nil) != nil {
		t.Fatal("Refused(nil) != nil")
	}
	_ = m.Refused(errors.New("database down"))
	body := scrape(t, m)
	for _, want := range []string{
		`tokenrelay_token_refusals_total{reason="expired"} 1`,
		`tokenrelay_rpc_requests_total{code="failed_precondition",procedure="/tokenrelay.capability.v1.CapabilityService/Exercise"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
