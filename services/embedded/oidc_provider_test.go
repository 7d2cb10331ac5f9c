package embedded_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/coupons/v1/couponsv1connect"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	paymentsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/payments/v1/paymentsv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/health"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/gateway"
	"github.com/tokenrelay/tokenrelay/services/gateway/oidctest"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// TestForeignProviderCheckout (issue 16): a system started while its
// OpenID Connect provider is down runs, not ready (/readyz names
// oidc_providers), until the provider is up; then a user of that real
// provider (npm oidc-provider, RS256 and ES256 access tokens from the
// authorization code flow) checks out through the gateway, in her own
// namespace: the local admin grants her points and a card by her
// issuer-qualified id, the demo shopper keeps his own balance, and the
// provider's client-credentials token is a client of its own that cannot
// reach an admin RPC.
func TestForeignProviderCheckout(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	p.Down(t) // down when the system starts: it starts anyway, not ready
	sys, err := embedded.Start(t.Context(), embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger:  slog.New(authn.NewLogHandler(slog.DiscardHandler)),
		Issuers: []gateway.Issuer{{Issuer: p.Issuer, Audience: oidctest.Audience}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	url := sys.URL()
	readyz := func() (int, string) {
		res, err := http.Get(url + health.ReadyPath)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "oidc_providers") {
		t.Fatalf("/readyz with the provider down: %d %q, want 503 naming oidc_providers", code, body)
	}
	p.Up(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for code, _ := readyz(); code != http.StatusOK; code, _ = readyz() {
		select {
		case <-t.Context().Done():
			t.Fatal("never ready")
		case <-tick.C:
		}
	}
	alice := gateway.ForeignSubject(p.Issuer, "alice")

	res, err := identityv1connect.NewIdentityServiceClient(http.DefaultClient, url).Login(t.Context(),
		connect.NewRequest(&identityv1.LoginRequest{Username: "admin", Password: identity.DemoAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	admin := connect.WithInterceptors(authn.NewBearerInterceptor(res.Msg.GetSession().GetAccessToken()))
	if _, err := pointsv1connect.NewPointsServiceClient(http.DefaultClient, url, admin).GrantPoints(t.Context(),
		connect.NewRequest(&pointsv1.GrantPointsRequest{UserId: alice, Points: 500, Reason: "welcome", IdempotencyKey: "alice-points"})); err != nil {
		t.Fatalf("grant points to the foreign user: %v", err)
	}
	if _, err := paymentsv1connect.NewPaymentsServiceClient(http.DefaultClient, url, admin).AddPaymentMethod(t.Context(),
		connect.NewRequest(&paymentsv1.AddPaymentMethodRequest{UserId: alice, CardNumber: embedded.DemoCard, ExpiryMonth: 12,
			ExpiryYear: int32(time.Now().Year() + 3), Label: "Alice's card", IdempotencyKey: "alice-card"})); err != nil {
		t.Fatalf("add the foreign user's card: %v", err)
	}

	as := func(tok string) *shopper {
		opts := connect.WithInterceptors(authn.NewBearerInterceptor(tok))
		return &shopper{
			orders:   orderprocessingv1connect.NewOrderProcessingServiceClient(http.DefaultClient, url, opts),
			coupons:  couponsv1connect.NewCouponsServiceClient(http.DefaultClient, url, opts),
			points:   pointsv1connect.NewPointsServiceClient(http.DefaultClient, url, opts),
			payments: paymentsv1connect.NewPaymentsServiceClient(http.DefaultClient, url, opts),
		}
	}
	for _, tc := range []struct {
		resource    string
		points, end int64
	}{{oidctest.RS256, 300, 200}, {oidctest.ES256, 100, 100}} {
		s := as(p.AuthorizationCode(t, tc.resource, "alice", "openid shop"))
		done := s.checkout(t, "", tc.points, s.card(t, embedded.DemoCard[12:]))
		if done.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED {
			t.Fatalf("%s: order ended %v", tc.resource, done.GetStatus())
		}
		if b := s.balance(t); b != tc.end {
			t.Fatalf("%s: alice's balance %d, want %d", tc.resource, b, tc.end)
		}
	}
	// The local demo shopper is untouched: his own balance, his own orders.
	if b := login(t, url).balance(t); b != 1000 {
		t.Fatalf("demo shopper's balance %d, want 1000", b)
	}
	// The provider's own client: a principal apart, with nothing of
	// alice's, and no admin (not mapped).
	batch := as(p.ClientCredentials(t, oidctest.ES256, "shop admin"))
	if b := batch.balance(t); b != 0 {
		t.Fatalf("client's balance %d, want 0", b)
	}
	if _, err := batch.points.GrantPoints(t.Context(), connect.NewRequest(&pointsv1.GrantPointsRequest{UserId: alice, Points: 1, IdempotencyKey: "x"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("foreign admin scope at GrantPoints: %v, want permission_denied", err)
	}
}
