package embedded

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
)

// flakyIdentity answers Login unavailable until fail runs out, then with
// a session; any other code ends the call.
type flakyIdentity struct {
	identityv1connect.UnimplementedIdentityServiceHandler
	fail  atomic.Int32
	calls atomic.Int32
	code  connect.Code
}

func (f *flakyIdentity) Login(context.Context, *connect.Request[identityv1.LoginRequest]) (*connect.Response[identityv1.LoginResponse], error) {
	f.calls.Add(1)
	if f.fail.Add(-1) >= 0 {
		return nil, connect.NewError(f.code, errors.New("keys: keys unavailable"))
	}
	return connect.NewResponse(&identityv1.LoginResponse{Session: &identityv1.Session{AccessToken: "at", RefreshToken: "rt"}}), nil
}

// login logs in with the seeder's client against h.
func login(t *testing.T, ctx context.Context, h *flakyIdentity) error {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(identityv1connect.NewIdentityServiceHandler(h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, err := seedClient(srv.URL).Login(ctx, "admin", "x")
	return err
}

// TestRetryUnavailable: the seeder's calls answered unavailable (a peer
// still fetching keys at start) are retried until they succeed; other
// codes are not retried; a context that ends stops the retries.
func TestRetryUnavailable(t *testing.T) {
	h := &flakyIdentity{code: connect.CodeUnavailable}
	h.fail.Store(3)
	if err := login(t, t.Context(), h); err != nil {
		t.Fatalf("Login after 3 unavailable answers: %v", err)
	}
	if n := h.calls.Load(); n != 4 {
		t.Fatalf("%d calls, want 4", n)
	}

	denied := &flakyIdentity{code: connect.CodePermissionDenied}
	denied.fail.Store(1)
	if err := login(t, t.Context(), denied); connect.CodeOf(err) != connect.CodePermissionDenied || denied.calls.Load() != 1 {
		t.Fatalf("permission_denied: %v after %d calls, want it at once", err, denied.calls.Load())
	}

	down := &flakyIdentity{code: connect.CodeUnavailable}
	down.fail.Store(1 << 30)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := login(t, ctx, down); err == nil {
		t.Fatal("Login with an ended context succeeded")
	}
}
