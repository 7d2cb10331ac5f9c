package embedded_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	identityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/identity/v1/identityv1connect"
	orderprocessingv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/orderprocessing/v1/orderprocessingv1connect"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/sdk/go/audit"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/services/embedded"
	"github.com/tokenrelay/tokenrelay/services/identity"
)

// auditedServices are the services that keep a token audit trail, by the
// name of their database and of their chain.
var auditedServices = []string{"order-processing", "coupons", "points", "payments"}

// TestAuditTrailSQLite and TestAuditTrailPostgres follow one checkout's
// tokens from issue to exercise, a failed one's to compensation, and a
// refused replay, through the admin's GetTokenAudit; then, after a
// restart, the same timeline and every service's chain verifies.
func TestAuditTrailSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testAuditTrail(t, embedded.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	}, func(ctx context.Context, name string) (*sqldb.DB, error) {
		return sqldb.Open(ctx, "sqlite://"+filepath.Join(dir, name+".db"))
	})
}

func TestAuditTrailPostgres(t *testing.T) {
	t.Parallel()
	pgURL := sqldbtest.PostgresURL(t) // skips without PostgreSQL
	var suffix [5]byte
	_, _ = rand.Read(suffix[:])
	prefix := "t_audit_" + hex.EncodeToString(suffix[:])
	ctx := context.Background()
	admin, err := sqldb.Open(ctx, pgURL, sqldb.WithMaxOpenConns(1))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		schemas []string
	)
	t.Cleanup(func() {
		defer admin.Close()
		for _, s := range schemas {
			if _, err := admin.SQL().ExecContext(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", s, err)
			}
		}
	})
	schema := func(name string) string {
		s := prefix + "_" + strings.ReplaceAll(name, "-", "_")
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(schemas, s) {
			schemas = append(schemas, s) // the opener runs on Start, before any cleanup
		}
		return s
	}
	open := func(ctx context.Context, name string) (*sqldb.DB, error) {
		return sqldb.Open(ctx, pgURL, sqldb.WithSchema(schema(name)), sqldb.WithMaxOpenConns(3))
	}
	testAuditTrail(t, embedded.WithDatabases(embedded.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: true,
		Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)),
	}, open), open)
}

func testAuditTrail(t *testing.T, cfg embedded.Config, open func(ctx context.Context, name string) (*sqldb.DB, error)) {
	sys, err := embedded.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := login(t, sys.URL())
	done := s.checkout(t, "WELCOME5", 300, s.card(t, embedded.DemoCard[12:]))
	doneTokens := s.placed
	failed := s.checkout(t, "TEA10", 200, s.card(t, embedded.DemoCardFailCapture[12:]))
	if done.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_COMPLETED ||
		failed.GetStatus() != orderprocessingv1.OrderStatus_ORDER_STATUS_FAILED {
		t.Fatalf("orders ended %v and %v", done.GetStatus(), failed.GetStatus())
	}
	// The completed order's tokens presented again, for a new checkout:
	// refused as replayed, and recorded so.
	started, err := s.orders.StartCheckout(t.Context(), connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "MUG-STONE", Quantity: 1}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
		CheckoutId: started.Msg.GetCheckout().GetId(), ConfirmationTokens: doneTokens, IdempotencyKey: "replay",
	}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("replayed tokens: %v", err)
	}
	// A fresh token refused by the order it is presented for: placed for
	// another checkout, then for its own whose total it does not settle.
	// Both refusals are recorded against the token.
	pts, err := s.points.ConfirmPoints(t.Context(), connect.NewRequest(&pointsv1.ConfirmPointsRequest{
		CheckoutToken: started.Msg.GetCheckoutToken(), Points: 100}))
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.orders.StartCheckout(t.Context(), connect.NewRequest(&orderprocessingv1.StartCheckoutRequest{
		Items: []*orderprocessingv1.CartItem{{Sku: "MUG-STONE", Quantity: 1}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range []string{other.Msg.GetCheckout().GetId(), started.Msg.GetCheckout().GetId()} {
		_, err = s.orders.PlaceOrder(t.Context(), connect.NewRequest(&orderprocessingv1.PlaceOrderRequest{
			CheckoutId: co, ConfirmationTokens: []string{pts.Msg.GetConfirmationToken()}, IdempotencyKey: "refused-" + co,
		}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition && connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("a points token alone for checkout %s: %v", co, err)
		}
	}

	// Only admins read the trail.
	_, err = s.orders.GetTokenAudit(t.Context(), connect.NewRequest(&orderprocessingv1.GetTokenAuditRequest{
		By: &orderprocessingv1.GetTokenAuditRequest_OrderId{OrderId: done.GetId()}}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("a shopper's GetTokenAudit: %v", err)
	}
	adm := adminOrders(t, sys.URL())
	if _, err := adm.GetTokenAudit(t.Context(), connect.NewRequest(&orderprocessingv1.GetTokenAuditRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("GetTokenAudit without a key: %v", err)
	}

	doneTimeline := checkTimeline(t, adm, done, true)
	checkTimeline(t, adm, failed, false)

	// A token's history by jti alone (the coupon's, the first token, whose
	// replay was refused), and a request's by txn.
	var issued *capabilityv1.AuditEvent
	for _, e := range doneTimeline {
		if e.GetAction() == string(audit.Issued) && e.GetService() == "coupons" {
			issued = e
		}
	}
	byJTI := auditOf(t, adm, &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_Jti{Jti: issued.GetJti()}})
	if got, want := actions(byJTI), []string{"coupons issued", "order-processing consumed", "coupons exercised", "order-processing refused"}; !slices.Equal(got, want) {
		t.Errorf("history of the coupon's token = %v, want %v", got, want)
	}
	if issued.GetTxn() == "" {
		t.Fatal("the issued event has no txn")
	}
	byTxn := auditOf(t, adm, &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_Txn{Txn: issued.GetTxn()}})
	if got := actions(byTxn); !slices.Equal(got, []string{"coupons issued"}) {
		t.Errorf("events of the ConfirmCoupon request = %v", got)
	}

	var checks []string
	for _, e := range auditOf(t, adm, &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_Jti{Jti: jtiOf(t, pts.Msg.GetConfirmationToken())}}) {
		checks = append(checks, e.GetService()+" "+e.GetAction()+" "+e.GetCheck())
	}
	if want := []string{"points issued ", "order-processing refused checkout", "order-processing refused settlement"}; !slices.Equal(checks, want) {
		t.Errorf("history of the refused points token = %v, want %v", checks, want)
	}
	// OrderProcessing's own tokens: the checkout token it issued.
	co := auditOf(t, adm, &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_Jti{Jti: jtiOf(t, other.Msg.GetCheckoutToken())}})
	if len(co) != 1 || co[0].GetAction() != string(audit.Issued) || co[0].GetKind() != "checkout" ||
		co[0].GetCheckoutId() != other.Msg.GetCheckout().GetId() || co[0].GetSubject() == "" || co[0].GetExpiresAt() == nil {
		t.Errorf("history of a checkout token = %v", co)
	}

	if err := sys.Close(); err != nil {
		t.Fatal(err)
	}
	sys, err = embedded.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, sys)
	after := auditOf(t, adminOrders(t, sys.URL()), &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_OrderId{OrderId: done.GetId()}})
	if got, want := actions(after), actions(doneTimeline); !slices.Equal(got, want) {
		t.Errorf("timeline after restart = %v, want %v", got, want)
	}
	for _, name := range auditedServices {
		db, err := open(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		head, err := audit.New(db).Verify(t.Context(), name)
		db.Close()
		if err != nil || head.Seq == 0 {
			t.Errorf("chain of %s after restart: head %+v, %v", name, head, err)
		}
	}
}

// checkTimeline checks the timeline of order o: each of its tokens issued
// by its domain, consumed by OrderProcessing for o, then exercised
// (completed) or compensated (failed; payments refused the capture, so the
// card's token was refused at Exercise and voided, never exercised); the
// order's checkout token issued once. It returns the timeline.
func checkTimeline(t *testing.T, adm orderprocessingv1connect.OrderProcessingServiceClient, o *orderprocessingv1.Order, completed bool) []*capabilityv1.AuditEvent {
	t.Helper()
	events := auditOf(t, adm, &orderprocessingv1.GetTokenAuditRequest{By: &orderprocessingv1.GetTokenAuditRequest_OrderId{OrderId: o.GetId()}})
	byToken := map[string][]string{}
	checkoutTokens := 0
	for _, e := range events {
		if e.GetJti() == "" || e.GetIssuer() == "" || e.GetService() == "" || e.GetHash() == "" {
			t.Errorf("incomplete event %v", e)
		}
		if e.GetKind() == "checkout" {
			if e.GetService() != "order-processing" || e.GetAction() != string(audit.Issued) || e.GetCheckoutId() != o.GetCheckoutId() {
				t.Errorf("checkout token event %v", e)
			}
			checkoutTokens++
			continue
		}
		if e.GetAction() == string(audit.Refused) && e.GetService() == "order-processing" {
			if e.GetCheck() != "replayed" || e.GetSubject() != o.GetUserId() {
				t.Errorf("refusal %v", e)
			}
			continue
		}
		if e.GetAction() == string(audit.Refused) && (e.GetCheck() != "failed_precondition" || e.GetSubject() != "order-processing") {
			t.Errorf("refusal at the issuer %v", e) // a declined capture, presented by OrderProcessing
		}
		if e.GetAction() != string(audit.Issued) && e.GetOrderId() != o.GetId() {
			t.Errorf("event %v of another order", e)
		}
		byToken[e.GetIssuer()] = append(byToken[e.GetIssuer()], e.GetService()+" "+e.GetAction())
	}
	for _, st := range o.GetSteps() {
		iss := st.GetIssuer()
		want := []string{iss + " issued", "order-processing consumed", iss + " exercised"}
		switch {
		case !completed && iss == "payments":
			want = []string{iss + " issued", "order-processing consumed", iss + " refused", iss + " compensated"}
		case !completed:
			want = append(want, iss+" compensated")
		}
		if got := byToken[iss]; !slices.Equal(got, want) {
			t.Errorf("order %s: %s token's events = %v, want %v", o.GetId(), iss, got, want)
		}
	}
	if len(byToken) != len(o.GetSteps()) || checkoutTokens != 1 {
		t.Errorf("order %s: events of %d tokens, %d steps; %d checkout tokens issued, want 1", o.GetId(), len(byToken), len(o.GetSteps()), checkoutTokens)
	}
	return events
}

func auditOf(t *testing.T, adm orderprocessingv1connect.OrderProcessingServiceClient, req *orderprocessingv1.GetTokenAuditRequest) []*capabilityv1.AuditEvent {
	t.Helper()
	res, err := adm.GetTokenAudit(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if u := res.Msg.GetUnreachableIssuers(); len(u) > 0 {
		t.Fatalf("unreachable issuers %v", u)
	}
	return res.Msg.GetEvents()
}

// jtiOf returns the jti of a token, read without verifying it.
func jtiOf(t *testing.T, raw string) string {
	t.Helper()
	_, c := claimsOf(t, raw)
	jti, _ := c["jti"].(string)
	if jti == "" {
		t.Fatal("no jti")
	}
	return jti
}

func actions(events []*capabilityv1.AuditEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.GetService()+" "+e.GetAction())
	}
	return out
}

// adminOrders is OrderProcessingService for the demo admin.
func adminOrders(t *testing.T, url string) orderprocessingv1connect.OrderProcessingServiceClient {
	t.Helper()
	res, err := identityv1connect.NewIdentityServiceClient(http.DefaultClient, url).Login(t.Context(),
		connect.NewRequest(&identityv1.LoginRequest{Username: "admin", Password: identity.DemoAdminPassword}))
	if err != nil {
		t.Fatal(err)
	}
	return orderprocessingv1connect.NewOrderProcessingServiceClient(http.DefaultClient, url,
		connect.WithInterceptors(authn.NewBearerInterceptor(res.Msg.GetSession().GetAccessToken())))
}
