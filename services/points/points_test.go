package points_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	capabilityv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/capability/v1"
	pointsv1 "github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1"
	"github.com/tokenrelay/tokenrelay/gen/go/tokenrelay/points/v1/pointsv1connect"
	"github.com/tokenrelay/tokenrelay/sdk/go/authn"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability"
	"github.com/tokenrelay/tokenrelay/sdk/go/capability/capabilitytest"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb"
	"github.com/tokenrelay/tokenrelay/sdk/go/sqldb/sqldbtest"
	"github.com/tokenrelay/tokenrelay/sdk/go/token"
	"github.com/tokenrelay/tokenrelay/sdk/go/vault"
	"github.com/tokenrelay/tokenrelay/services/points"
)

type env struct {
	*capabilitytest.Domain
	points pointsv1connect.PointsServiceClient
}

func start(t *testing.T, db *sqldb.DB, opts ...connect.ClientOption) *env {
	t.Helper()
	d := capabilitytest.Start(t, points.Name, func(tr capability.Trust, vk *vault.Keyring) (capabilitytest.Service, error) {
		return points.New(t.Context(), points.Config{DB: db, Vault: vk, Logger: slog.New(authn.NewLogHandler(slog.DiscardHandler)), Trust: tr})
	}, opts...)
	return &env{Domain: d, points: pointsv1connect.NewPointsServiceClient(d.HTTP, d.URL, opts...)}
}

func (e *env) grant(t *testing.T, user string, n int64) {
	t.Helper()
	_, err := e.points.GrantPoints(t.Context(), capabilitytest.Request(e.World.As(t, "usr_admin", "shop admin"),
		&pointsv1.GrantPointsRequest{UserId: user, Points: n, Reason: "test"}))
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) balance(t *testing.T, user string) int64 {
	t.Helper()
	res, err := e.points.GetBalance(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &pointsv1.GetBalanceRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetBalance()
}

func (e *env) confirm(t *testing.T, user, checkout string, n int64) (string, error) {
	t.Helper()
	res, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(e.World.As(t, user, "shop"), &pointsv1.ConfirmPointsRequest{
		CheckoutToken: e.World.Checkout(t, user, checkout, 5000, "EUR", "coupons", "points", "payments"),
		Points:        n,
	}))
	if err != nil {
		return "", err
	}
	return res.Msg.GetConfirmationToken(), nil
}

// TestCycle runs confirm -> exercise -> compensate through the generated
// clients, on both stores and both protocols.
func TestCycle(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, func(t *testing.T, db *sqldb.DB) {
		for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
			t.Run(name, func(t *testing.T) {
				e := start(t, db, opts...)
				user := "usr_" + name
				e.grant(t, user, 1000)
				tok, err := e.confirm(t, user, "op_"+name, 400)
				if err != nil {
					t.Fatal(err)
				}
				x, err := e.Exercise(t, tok, "ord_"+name)
				if err != nil {
					t.Fatal(err)
				}
				if x.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_APPLIED || x.GetSettlement().GetAmountMinor() != 400 || x.GetCapability() != "points:spend" {
					t.Fatalf("Exercise = %v", x)
				}
				if b := e.balance(t, user); b != 600 {
					t.Fatalf("balance after exercise = %d, want 600", b)
				}
				again, err := e.Exercise(t, tok, "ord_"+name)
				if err != nil || again.GetReference() != x.GetReference() {
					t.Fatalf("retry = %v, %v", again, err)
				}
				if _, err := e.Exercise(t, tok, "ord_other"); connect.CodeOf(err) != connect.CodeAlreadyExists {
					t.Fatalf("replay for another order: %v, want already_exists", err)
				}
				x, err = e.Compensate(t, tok, "ord_"+name)
				if err != nil || x.GetState() != capabilityv1.ExerciseState_EXERCISE_STATE_COMPENSATED {
					t.Fatalf("Compensate = %v, %v", x, err)
				}
				if b := e.balance(t, user); b != 1000 {
					t.Fatalf("balance after compensation = %d, want 1000", b)
				}
			})
		}
	})
}

// TestRefusals sends every kind of bad request: each gets its code and
// changes nothing.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := start(t, sqldbtest.SQLite(t))
	e.grant(t, "usr_alice", 1000)
	good, err := e.confirm(t, "usr_alice", "op_1", 100)
	if err != nil {
		t.Fatal(err)
	}
	foreign, expired := e.Forged(t, token.ConfirmationClaims{
		Registered: token.Registered{Subject: "usr_alice", Audience: []string{"order-processing"}}, OrderProcessingID: "op_1",
		Capabilities: []string{"points:spend"}, Settlement: token.Settlement{AmountMinor: 100, Currency: "EUR"},
	})
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	shop := func(user string) http.Header { return e.World.As(t, user, "shop") }
	checkout := func(user string) string { return e.World.Checkout(t, user, "op_1", 5000, "EUR", "points") }

	for _, tc := range []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"no transaction token", func() error {
			_, err := e.points.GetBalance(t.Context(), connect.NewRequest(&pointsv1.GetBalanceRequest{}))
			return err
		}, connect.CodeUnauthenticated},
		{"grant without admin", func() error {
			_, err := e.points.GrantPoints(t.Context(), capabilitytest.Request(shop("usr_alice"), &pointsv1.GrantPointsRequest{UserId: "usr_alice", Points: 5}))
			return err
		}, connect.CodePermissionDenied},
		{"more points than balance", func() error {
			_, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(shop("usr_alice"), &pointsv1.ConfirmPointsRequest{CheckoutToken: checkout("usr_alice"), Points: 1001}))
			return err
		}, connect.CodeFailedPrecondition},
		{"zero points", func() error {
			_, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(shop("usr_alice"), &pointsv1.ConfirmPointsRequest{CheckoutToken: checkout("usr_alice"), Points: 0}))
			return err
		}, connect.CodeInvalidArgument},
		{"someone else's checkout", func() error {
			_, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(shop("usr_bob"), &pointsv1.ConfirmPointsRequest{CheckoutToken: checkout("usr_alice"), Points: 1}))
			return err
		}, connect.CodePermissionDenied},
		{"checkout token for another audience", func() error {
			_, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(shop("usr_alice"), &pointsv1.ConfirmPointsRequest{
				CheckoutToken: e.World.Checkout(t, "usr_alice", "op_1", 5000, "EUR", "coupons"), Points: 1}))
			return err
		}, connect.CodeUnauthenticated},
		{"missing checkout token", func() error {
			_, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(shop("usr_alice"), &pointsv1.ConfirmPointsRequest{Points: 1}))
			return err
		}, connect.CodeInvalidArgument},
		{"bad idempotency key", func() error {
			_, err := e.points.ConfirmPoints(t.Context(), capabilitytest.Request(shop("usr_alice"), &pointsv1.ConfirmPointsRequest{CheckoutToken: checkout("usr_alice"), Points: 1, IdempotencyKey: "a b"}))
			return err
		}, connect.CodeInvalidArgument},
		{"exercise without workload token", func() error {
			return e.ExerciseAsShopper(t, good, "ord_1")
		}, connect.CodeUnauthenticated},
		{"tampered token", func() error { _, err := e.Exercise(t, tampered, "ord_1"); return err }, connect.CodeInvalidArgument},
		{"foreign token", func() error { _, err := e.Exercise(t, foreign, "ord_1"); return err }, connect.CodeInvalidArgument},
		{"expired token", func() error { _, err := e.Exercise(t, expired, "ord_1"); return err }, connect.CodeFailedPrecondition},
		{"missing order id", func() error { _, err := e.Exercise(t, good, ""); return err }, connect.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); connect.CodeOf(err) != tc.want {
				t.Fatalf("error = %v, want code %v", err, tc.want)
			}
		})
	}
	if b := e.balance(t, "usr_alice"); b != 1000 {
		t.Fatalf("balance = %d after refused requests, want 1000", b)
	}
	// The good token still works once, after all that.
	if _, err := e.Exercise(t, good, "ord_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exercise(t, good, "ord_2"); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("replayed jti: %v, want already_exists", err)
	}
}
